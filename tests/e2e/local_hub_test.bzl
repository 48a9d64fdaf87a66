"""End-to-end tests that drive the local hub (//tools/local_hub): started by the test itself, so
local_hub.sh and hub_plugin.so come first in every such test's arguments."""

_LOCAL_HUB = [
    "//tools/local_hub:local_hub.sh",
    "//tools/local_hub:hub_plugin.so",
]

def _local_hub_args_and_data(tools, data):
    return {
        "args": ["$(rootpath %s)" % label for label in _LOCAL_HUB + tools],
        "data": _LOCAL_HUB + tools + data,
    }

def local_hub_sh_test(name, tools = [], data = [], **kwargs):
    """An sh_test run as `TEST local_hub.sh hub_plugin.so TOOLS...`.

    Args:
      name: the test's name.
      tools: labels passed as further arguments, in this order (they are runfiles too).
      data: further runfiles that are not arguments.
      **kwargs: the sh_test's other attributes.
    """
    native.sh_test(name = name, **dict(kwargs, **_local_hub_args_and_data(tools, data)))

def local_hub_cc_test(name, tools = [], data = [], **kwargs):
    """A cc_test run as `TEST local_hub.sh hub_plugin.so TOOLS...` (see local_hub_sh_test)."""
    native.cc_test(name = name, **dict(kwargs, **_local_hub_args_and_data(tools, data)))
