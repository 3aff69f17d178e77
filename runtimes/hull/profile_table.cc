#include "runtimes/hull/compiled_profiles.h"

#include <seccomp.h>

#include "runtimes/hull/profiles.h"

namespace mentat::hull {

Result<SeccompProgram> BuildProfile(const std::string& profile) {
  if (kCompiledProfilesArch != seccomp_arch_native()) return CompileProfile(profile);
  for (size_t i = 0; i < kCompiledProfileCount; ++i) {
    const CompiledProfile& p = kCompiledProfiles[i];
    if (profile != p.name) continue;
    SeccompProgram program;
    program.code.assign(p.code, p.code + p.length);
    program.denied = BlockedInAllProfiles();
    return program;
  }
  // Not compiled: unknown (ProfileSyscalls names the known ones).
  if (auto names = ProfileSyscalls(profile); !names) return std::unexpected(names.error());
  return Internal("seccomp: profile " + profile + " was not compiled into this hull");
}

}  // namespace mentat::hull
