// Runs a short helper command and captures what it prints: the dynamic loader listing a
// binary's libraries, a base's version command. Optionally chrooted into a directory, always
// with a clean environment and a deadline.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "apis/error.h"

namespace mentat {

struct CapturedOutput {
  int exit_code = -1;  // 128+N after a signal N
  std::string out;     // stdout and stderr, interleaved as written
};

struct CaptureOptions {
  // When set, the command runs chrooted here (root only): argv[0] is a path inside it.
  std::string chroot_dir;
  // With chroot_dir: a private mount namespace with /proc mounted in the chroot, as a sandbox
  // has it (the loader needs /proc/self/exe for $ORIGIN, the JVM to find itself).
  bool mount_proc = false;
  std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C.UTF-8"};
  std::chrono::milliseconds timeout{30000};
  size_t max_output = 1 << 20;  // what is printed beyond this is dropped
};

// kFailedPrecondition (EPERM) when chroot (or the mount namespace) is not permitted; kUnavailable
// on timeout (the command is killed); kInternal when it could not be started. A command that runs
// and fails is not an error: see exit_code.
Result<CapturedOutput> RunCaptured(const std::vector<std::string>& argv, const CaptureOptions& o);

}  // namespace mentat
