"""The Tencent service samples: the device program, a `bazel run` target that runs it against the
local hub (examples/local_hub_sample.sh), and a test that does the same on free ports."""

_HUB = [
    "//tools/local_hub:hub_plugin.so",
    "//tools/local_hub:https_server.py",
    "//tools/local_hub:local_hub.sh",
    "//tools/local_hub:shadow_service.py",
]

def tencent_sample(name, deps, expect, template = None):
    """`name`: bazel run target; `name`_device: the program; `name`_test: checks `expect` lines."""
    native.cc_binary(
        name = name + "_device",
        srcs = [name + ".cc"],
        # --plugin: the shared objects resolve hublink's, Abseil's and protobuf's symbols to ours.
        linkopts = ["-rdynamic"],
        deps = [":sample_support", "//plugins:base", "@system_libs//:absl"] + deps,
    )
    args = [
        name,
        "$(rootpath :%s_device)" % name,
        "$(rootpath //tools/local_hub:local_hub.sh)",
        "$(rootpath //tools/local_hub:hub_plugin.so)",
    ] + (["$(rootpath %s)" % template] if template else []) + ["--"]
    data = [":%s_device" % name] + _HUB + ([template] if template else [])
    native.sh_binary(
        name = name,
        srcs = ["local_hub_sample.sh"],
        args = args,
        data = data,
    )
    native.sh_test(
        name = name + "_test",
        size = "small",
        srcs = ["local_hub_sample_test.sh"],
        # Test args are split like a shell's words: each expected line is one quoted word.
        args = ["$(rootpath :local_hub_sample.sh)"] + args + ["'%s'" % line for line in expect],
        data = data + [":local_hub_sample.sh", "//tests:free_port.py"],
    )
