#include "runtimes/isolation/init_binary.h"

#include "runtimes/helper_binary.h"

namespace mentat {

std::string FindSandboxInit() { return FindHelperBinary("sandbox-init", "MENTAT_SANDBOX_INIT"); }

}  // namespace mentat
