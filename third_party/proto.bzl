"""C++ code from .proto files with the system protoc (Debian's protobuf-compiler), no downloads."""

def hublink_cc_proto(name, srcs, deps = [], visibility = None, testonly = False, for_plugin = False):
    """Generates <file>.pb.{h,cc} for srcs and wraps them in cc_library `name`.

    deps are other hublink_cc_proto targets whose .proto files srcs import. for_plugin adds
    `<name>_for_plugin`, the same code without protobuf, for a plugin shared object (which takes
    protobuf from the program that loads it); deps then need it too.
    """
    hdrs = [s[:-len(".proto")] + ".pb.h" for s in srcs]
    ccs = [s[:-len(".proto")] + ".pb.cc" for s in srcs]
    native.filegroup(
        name = name + "_files",
        srcs = srcs + [d + "_files" for d in deps],
        visibility = visibility,
        testonly = testonly,
    )
    native.genrule(
        name = name + "_gen",
        srcs = srcs + [d + "_files" for d in deps],
        outs = hdrs + ccs,
        cmd = "protoc -I. -I/usr/include --cpp_out=$(BINDIR) " +
              " ".join(["$(location %s)" % s for s in srcs]),
        testonly = testonly,
    )
    native.cc_library(
        name = name,
        srcs = ccs,
        hdrs = hdrs,
        deps = deps + ["@system_libs//:protobuf"],
        visibility = visibility,
        testonly = testonly,
    )

    if for_plugin:
        native.cc_library(
            name = name + "_for_plugin",
            srcs = ccs,
            hdrs = hdrs,
            deps = [d + "_for_plugin" for d in deps],
            visibility = visibility,
            testonly = testonly,
        )
