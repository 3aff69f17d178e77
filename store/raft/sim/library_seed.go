package main

// Only in the simulation's archive (//store/raft:raftshim_seeded_archive), never in the
// server's. Two things a deterministic simulation needs from the Go side:
//
//  1. etcd's Raft library draws each node's randomized election timeout from one package-level
//     generator seeded from the clock (raft.go, globalRand). A simulation must replay from its
//     seed, so it seeds that generator itself. The struct below has the layout of
//     raft.lockedRand in the Debian source this is built against.
//  2. Every call from a thread Go did not create borrows a Go thread context and gives it back
//     (Go 1.19: several syscalls a call), which made the simulation's ~15,000 calls a seed slow.
//     raftshim_run_on_go_thread runs the caller's function on a thread Go owns, where calls into
//     Go are plain callbacks.

/*
#include <stdint.h>
typedef void (*raftshim_task)(void*);
static inline void raftshim_call_task(raftshim_task f, void* arg) { f(arg); }
*/
import "C"

import (
	"math/rand"
	"runtime"
	"sync"
	"unsafe" // go:linkname

	_ "go.etcd.io/etcd/raft"
)

//go:linkname libraryRand go.etcd.io/etcd/raft.globalRand
var libraryRand *struct {
	mu   sync.Mutex
	rand *rand.Rand
}

// raftshim_seed_library_rand makes every later election timeout of every node in this process
// a function of `seed` and of the order of the calls.
//
//export raftshim_seed_library_rand
func raftshim_seed_library_rand(seed C.uint64_t) {
	libraryRand.mu.Lock()
	defer libraryRand.mu.Unlock()
	libraryRand.rand.Seed(int64(seed))
}

// raftshim_run_on_go_thread calls f(arg) on a thread of the Go runtime and returns when it
// returns.
//
//export raftshim_run_on_go_thread
func raftshim_run_on_go_thread(f C.raftshim_task, arg unsafe.Pointer) {
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		C.raftshim_call_task(f, arg)
		close(done)
	}()
	<-done
}
