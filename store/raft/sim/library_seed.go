package main

// Only in the simulation's archive (//store/raft:raftshim_seeded_archive), never in the
// server's. What a deterministic simulation needs from the Go side:
//
//  1. etcd's Raft library draws each node's randomized election timeout from one package-level
//     generator seeded from the clock (raft.go, globalRand). A simulation must replay from its
//     seed, so it seeds that generator itself. The struct below has the layout of
//     raft.lockedRand in the Debian source this is built against.
//  2. (raftshim_run_on_go_thread, now in the shim itself, for the server's nodes too.)

/*
#include <stdint.h>
*/
import "C"

import (
	"math/rand"
	"sync"
	_ "unsafe" // go:linkname

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
