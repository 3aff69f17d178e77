// Docker's exit states as ExitResults (container_exit.h).
#include "runtimes/docker/container_exit.h"

#include <string.h>

#include <string>

namespace mentat {

// Containers (and exec'd commands) run under docker-init, which exits 128+N when its child
// dies of signal N (as a shell does): that is reported as the signal. A workload's own
// exit(137) reads the same.
void SetCodeOrSignal(ExitResult& r, int code) {
  if (code > 128 && code <= 128 + 64) {
    r.signal = code - 128;
    r.message = std::string("killed by signal ") + strsignal(*r.signal);
  } else {
    r.exit_code = code;
    r.message = "exited with code " + std::to_string(code);
  }
}

ExitResult ExitFromState(const Json& state, int64_t memory_mb) {
  ExitResult r;
  r.oom_killed = state.value("OOMKilled", false);
  SetCodeOrSignal(r, state.value("ExitCode", 0));
  if (r.oom_killed) {
    r.message = "OOM-killed: exceeded its " +
                (memory_mb > 0 ? std::to_string(memory_mb) + " MB " : std::string()) + "memory limit";
  }
  std::string err = state.value("Error", "");
  if (!err.empty()) r.message += " (" + err + ")";
  return r;
}

}  // namespace mentat
