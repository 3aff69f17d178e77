#pragma once

#include <signal.h>

#include <cstdlib>
#include <cstring>

namespace mentat::hull {

// A test's handle on the moments between the steps of `hull run`. With HULL_TEST_STOP_AT=<name>
// in its environment, hull stops itself (SIGSTOP) at the point of that name, and a test that
// waits for the stop can kill it exactly there, every time, instead of guessing with a timer.
// Without the variable (always, outside tests) a point costs one getenv. The points of a gated
// start, in order: "cloned", "attached" (bridge), "recorded", "released".
inline void StopPoint(const char* name) {
  const char* at = std::getenv("HULL_TEST_STOP_AT");
  if (at != nullptr && std::strcmp(at, name) == 0) ::raise(SIGSTOP);
}

}  // namespace mentat::hull
