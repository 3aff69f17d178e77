// How a container's (or an exec'd command's) end reads as an ExitResult: Docker's exit code,
// signal (through docker-init's 128+N) and OOM kill, in the words the other drivers use.
#pragma once

#include <cstdint>

#include "apis/object.h"
#include "runtimes/driver.h"

namespace mentat {

// Sets `r`'s exit code, or its signal for a code docker-init gives a child killed by one.
void SetCodeOrSignal(ExitResult& r, int code);

// The exit recorded in a container's inspected State; `memory_mb` > 0 is named in an OOM kill.
ExitResult ExitFromState(const Json& state, int64_t memory_mb);

}  // namespace mentat
