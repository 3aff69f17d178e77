"""size_optimized_binary: a cc_binary built, with all its dependencies, for size (-c opt -Os,
one section per function and datum so --gc-sections can drop the unused), whatever mode the
build itself runs in. The static hull's 3 MB budget (seed 003) holds only when the libraries
under it are optimized too, not just main.cc."""

def _for_size_impl(settings, attr):
    return {
        "//command_line_option:compilation_mode": "opt",
        "//command_line_option:copt": ["-Os", "-ffunction-sections", "-fdata-sections"],
    }

_for_size = transition(
    implementation = _for_size_impl,
    inputs = [],
    outputs = ["//command_line_option:compilation_mode", "//command_line_option:copt"],
)

def _size_optimized_binary_impl(ctx):
    built = ctx.attr.binary[0][DefaultInfo].files_to_run.executable
    out = ctx.actions.declare_file(ctx.label.name)
    ctx.actions.run_shell(
        inputs = [built],
        outputs = [out],
        command = "cp \"$1\" \"$2\"",
        arguments = [built.path, out.path],
    )
    return [DefaultInfo(executable = out, files = depset([out]))]

size_optimized_binary = rule(
    implementation = _size_optimized_binary_impl,
    executable = True,
    attrs = {
        "binary": attr.label(cfg = _for_size, executable = True, mandatory = True),
        "_allowlist_function_transition": attr.label(
            default = "@bazel_tools//tools/allowlists/function_transition_allowlist",
        ),
    },
)
