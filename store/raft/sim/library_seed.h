// The calls into the simulation's copy of the shim beyond RaftCore (library_seed.go).
#pragma once

#include <cstdint>

extern "C" {
// Seeds the library's election-timeout randomness (shared by every node in the process).
void raftshim_seed_library_rand(uint64_t seed);
// Runs task(arg) on a thread the Go runtime owns, where calls into the library are cheap.
void raftshim_run_on_go_thread(void (*task)(void*), void* arg);
}
