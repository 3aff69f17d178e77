// hull's seccomp profiles as BPF, made at build time: //runtimes/hull:profile_bpf_gen runs
// CompileProfile (libseccomp, profiles.cc) for every profile of HullProfiles() and writes the
// programs into compiled_profiles.cc. A `hull run` then spends no time in libseccomp, which
// took ~0.7 ms of its start. hull_unit_test checks that each one equals what CompileProfile
// makes now.
#pragma once

#include <linux/filter.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "apis/error.h"
#include "runtimes/isolation/seccomp.h"

namespace mentat::hull {

struct CompiledProfile {
  const char* name;
  const sock_filter* code;
  size_t length;
};

// Generated (compiled_profiles.cc).
extern const CompiledProfile kCompiledProfiles[];
extern const size_t kCompiledProfileCount;
// libseccomp's token of the architecture they were made for (the build machine's: genrule
// tools run there). A hull built for another one makes its filters at run time instead.
extern const uint32_t kCompiledProfilesArch;

// The filter of `profile`, ready for ConfineInChild: the one made at build time, or
// kInvalidArgument naming the profile and the ones there are.
Result<SeccompProgram> BuildProfile(const std::string& profile);

}  // namespace mentat::hull
