// Where Mentat's helper binaries are installed (sandbox-init, log-relay): the ones the agent and
// the drivers start beside the workload, looked up the same way for every helper.
#pragma once

#include <string>

namespace mentat {

// The executable `name`, from the first of: $`env_var`, next to the running binary, the Bazel
// layout (bazel-bin/cmd/<name>/<name> beside the binary's own package, the binary's runfiles, a
// test's TEST_SRCDIR), /usr/lib/mentat/<name>. Empty if it is nowhere.
std::string FindHelperBinary(const std::string& name, const char* env_var);

}  // namespace mentat
