// The agent's flags that bound the unpacked app rootfs trees on a node (unpack.h, artifacts.h):
// registered alike on mentat-agent and on mentat-server --dev, whose in-process agent has the
// same cache, so that an error naming a flag names one that exists on either.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "apis/error.h"
#include "runtimes/agent/artifacts.h"

namespace mentat {

struct ArtifactFlags {
  int64_t unpack_max_mb = static_cast<int64_t>(UnpackLimits{}.max_bytes >> 20);
  int64_t unpack_max_entries = static_cast<int64_t>(UnpackLimits{}.max_entries);
  int64_t unpack_max_ratio = static_cast<int64_t>(UnpackLimits{}.max_ratio);
  int64_t budget_mb = 0;  // 0: automatic (ArtifactLimits)
  int64_t budget_entries = 0;
  std::string gc_grace = "1h";
  std::string gc_interval = "1m";
};

void AddArtifactFlags(CLI::App& app, ArtifactFlags& flags);

// The limits the flags set; kInvalidArgument naming the flag for a duration that is none.
Result<ArtifactLimits> ArtifactLimitsFromFlags(const ArtifactFlags& flags);

}  // namespace mentat
