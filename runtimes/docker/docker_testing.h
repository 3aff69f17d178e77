// For tests against the real dockerd: starts it when its socket does not answer and imports
// the busybox image (scripts/dockerd.sh), once per test process.
#pragma once

#include <string>

#include "apis/error.h"

namespace mentat {

inline constexpr const char* kBusyboxImage = "local/busybox:1";

// Runs scripts/dockerd.sh (from the runfiles). An error says why dockerd is not usable.
Status EnsureDockerd();

// Runs a shell command and returns its stdout (its exit status in *status when given).
std::string RunShell(const std::string& command, int* status = nullptr);

}  // namespace mentat
