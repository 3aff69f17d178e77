// hull's seccomp profiles (seed 003, "Seccomp Profiles"): allowlists whose violation kills the
// process. Every profile also holds the few calls hull's own PID 1 (sandbox-init) and the exec of
// the workload need, and none holds a syscall of BlockedInAllProfiles().
#pragma once

#include <string>
#include <vector>

#include "apis/error.h"
#include "runtimes/isolation/seccomp.h"

namespace mentat::hull {

// The syscall names of `profile` (one of HullProfiles()): kInvalidArgument naming the profile
// otherwise. Names this architecture lacks are kept; the filter skips them.
Result<std::vector<std::string>> ProfileSyscalls(const std::string& profile);

// The filter of `profile` made now by libseccomp (~0.7 ms for an allowlist): what
// //runtimes/hull:profile_bpf_gen runs at build time. hull itself uses BuildProfile
// (compiled_profiles.h), which returns the filters made then.
Result<SeccompProgram> CompileProfile(const std::string& profile);

}  // namespace mentat::hull
