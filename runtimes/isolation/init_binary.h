// Where the container's PID 1 (//cmd/sandbox-init) is installed, for the sandbox driver and hull.
#pragma once

#include <string>

namespace mentat {

// $MENTAT_SANDBOX_INIT, next to the running binary, the Bazel layout (bazel-bin/cmd/sandbox-init/,
// or the binary's runfiles), /usr/lib/mentat. Empty if nowhere.
std::string FindSandboxInit();

}  // namespace mentat
