// Package main is a C ABI over etcd's Raft library (go.etcd.io/etcd/raft, as Debian packages
// it): one RawNode per handle, driven by C++ through the functions below. The shim holds no
// policy. Persistence, transport, applying entries, snapshots and what leadership means are the
// caller's; the shim keeps only the in-memory copy of the log the library reads
// (raft.MemoryStorage), filled by the caller on restart and by Advance after each Ready.
//
// Calls on one handle must not overlap (the caller serializes them). Buffers returned to C are
// malloc'd and freed by the caller with free(). Byte layouts are little-endian and documented at
// each function; raftpb messages stay opaque (their protobuf encoding) except for what the
// caller must route.
package main

/*
#include <stdint.h>
#include <stdlib.h>
typedef void (*raftshim_task)(void*);
static inline void raftshim_call_task(raftshim_task f, void* arg) { f(arg); }
*/
import "C"

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"go.etcd.io/etcd/raft"
	pb "go.etcd.io/etcd/raft/raftpb"
)

type node struct {
	rn      *raft.RawNode
	storage *raft.MemoryStorage
	conf    pb.ConfState // the latest applied configuration, for snapshots the caller takes
	ready   *raft.Ready  // handed out, not yet advanced
	logs    *logBuffer
}

var (
	mu      sync.Mutex
	nodes   = map[uint64]*node{}
	lastID  uint64
	errLast = map[uint64]string{}
)

func get(h C.uint64_t) *node {
	mu.Lock()
	defer mu.Unlock()
	return nodes[uint64(h)]
}

// cBytes copies b to a malloc'd buffer for C (never NULL, even for no bytes).
func cBytes(b []byte, out **C.char, n *C.size_t) {
	*n = C.size_t(len(b))
	if len(b) == 0 {
		*out = (*C.char)(C.malloc(1))
		return
	}
	*out = (*C.char)(C.CBytes(b))
}

func goBytes(p *C.char, n C.size_t) []byte {
	if n == 0 {
		return nil
	}
	return C.GoBytes(unsafe.Pointer(p), C.int(n))
}

// Result codes.
const (
	okCode       = 0
	errNoHandle  = -1
	errDropped   = -2 // a proposal the node cannot take now (no leader, a transfer, too much in flight)
	errInvalid   = -3 // malformed input
	errStepLocal = -4 // a message for a local type, or from an unknown peer: ignored
	errOther     = -5
)

func code(err error) C.int {
	switch {
	case err == nil:
		return okCode
	case errors.Is(err, raft.ErrProposalDropped):
		return errDropped
	case errors.Is(err, raft.ErrStepLocalMsg), errors.Is(err, raft.ErrStepPeerNotFound):
		return errStepLocal
	default:
		return errOther
	}
}

// reader reads the length-prefixed layouts the caller sends.
type reader struct {
	b   []byte
	err error
}

func (r *reader) u32() uint32 {
	if r.err != nil || len(r.b) < 4 {
		r.err = errors.New("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) u64() uint64 {
	if r.err != nil || len(r.b) < 8 {
		r.err = errors.New("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.u32()
	if r.err != nil || uint32(len(r.b)) < n {
		r.err = errors.New("truncated")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// writer lays bytes out, or (counting) only adds up how many it would: a Ready is counted
// first, then written straight into the C buffer it is handed out in, with no Go copy of it
// (at 64 clients a Ready holds ~100 KB; building it in Go each time kept the collector busy).
type writer struct {
	b        []byte
	counting bool
	n        int
}

func (w *writer) u8(v uint8) {
	if w.counting {
		w.n++
		return
	}
	w.b = append(w.b, v)
}

func (w *writer) u32(v uint32) {
	if w.counting {
		w.n += 4
		return
	}
	w.b = binary.LittleEndian.AppendUint32(w.b, v)
}

func (w *writer) u64(v uint64) {
	if w.counting {
		w.n += 8
		return
	}
	w.b = binary.LittleEndian.AppendUint64(w.b, v)
}

func (w *writer) bytes(v []byte) {
	w.u32(uint32(len(v)))
	if w.counting {
		w.n += len(v)
		return
	}
	w.b = append(w.b, v...)
}

type sizedMarshaler interface {
	Size() int
	MarshalTo([]byte) (int, error)
}

// proto writes m's protobuf encoding as bytes, marshalled in place.
func (w *writer) proto(m sizedMarshaler) {
	n := m.Size()
	w.u32(uint32(n))
	if w.counting {
		w.n += n
		return
	}
	start := len(w.b)
	if cap(w.b)-start < n {
		w.b = append(w.b, make([]byte, n)...)
	} else {
		w.b = w.b[:start+n]
	}
	if _, err := m.MarshalTo(w.b[start:]); err != nil {
		panic(fmt.Sprintf("raftshim: marshal: %v", err)) // only on a programming error
	}
}

// toC lays out what encode writes in one malloc'd buffer for C: counted, then written in place.
func toC(encode func(w *writer), out **C.char, n *C.size_t) {
	count := &writer{counting: true}
	encode(count)
	size := count.n
	base := C.malloc(C.size_t(size + 1)) // never NULL-sized
	buf := unsafe.Slice((*byte)(base), size+1)[:0:size]
	w := &writer{b: buf}
	encode(w)
	if len(w.b) != size || (size > 0 && unsafe.Pointer(&w.b[0]) != base) {
		// The count was wrong and append moved the bytes to Go memory: copy them over.
		C.free(base)
		cBytes(w.b, out, n)
		return
	}
	*out = (*C.char)(base)
	*n = C.size_t(size)
}

// cView is C memory seen as a Go slice, without a copy; valid while the caller's buffer is.
// Only for what is unmarshalled (the generated code copies every bytes field it keeps).
func cView(p *C.char, n C.size_t) []byte {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))
}

func marshal(m interface{ Marshal() ([]byte, error) }) []byte {
	b, err := m.Marshal()
	if err != nil {
		panic(fmt.Sprintf("raftshim: marshal: %v", err)) // only on a programming error
	}
	return b
}

// Entries: u32 count, then per entry u64 index, u64 term, u32 type, bytes data, bytes raw (the
// whole entry's protobuf, which the caller stores and hands back on restart).
func putEntries(w *writer, ents []pb.Entry) {
	w.u32(uint32(len(ents)))
	for i := range ents {
		e := &ents[i]
		w.u64(e.Index)
		w.u64(e.Term)
		w.u32(uint32(e.Type))
		w.bytes(e.Data)
		w.proto(e)
	}
}

func setError(h uint64, err error) {
	mu.Lock()
	defer mu.Unlock()
	if err == nil {
		delete(errLast, h)
	} else {
		errLast[h] = err.Error()
	}
}

//export raftshim_last_error
func raftshim_last_error(h C.uint64_t, out **C.char, n *C.size_t) {
	mu.Lock()
	msg := errLast[uint64(h)]
	mu.Unlock()
	cBytes([]byte(msg), out, n)
}

// raftshim_new makes a node. `config`: u64 id, u32 election_tick, u32 heartbeat_tick, u64
// max_size_per_msg, u32 max_inflight_msgs, u64 max_uncommitted_entries_size, u64 applied,
// u32 pre_vote, u32 check_quorum (0 or 1). `state` is what the caller persisted: bytes hard_state (empty
// for none), bytes snapshot (empty for none), u32 count then that many bytes raw entries (as
// returned in Ready, in index order). `peers`: u32 count then u64 ids; non-empty only to
// bootstrap a new cluster on an empty state. Returns the handle, or 0 with the error in
// raftshim_last_error(0, ...).
//
//export raftshim_new
func raftshim_new(config *C.char, configLen C.size_t, state *C.char, stateLen C.size_t,
	peers *C.char, peersLen C.size_t) C.uint64_t {
	n, err := newNode(goBytes(config, configLen), goBytes(state, stateLen), goBytes(peers, peersLen))
	if err != nil {
		setError(0, err)
		return 0
	}
	mu.Lock()
	defer mu.Unlock()
	lastID++
	nodes[lastID] = n
	return C.uint64_t(lastID)
}

func newNode(config, state, peers []byte) (*node, error) {
	r := &reader{b: config}
	logs := &logBuffer{}
	cfg := &raft.Config{
		ID:                        r.u64(),
		ElectionTick:              int(r.u32()),
		HeartbeatTick:             int(r.u32()),
		MaxSizePerMsg:             r.u64(),
		MaxInflightMsgs:           int(r.u32()),
		MaxUncommittedEntriesSize: r.u64(),
		Applied:                   r.u64(),
		ReadOnlyOption:            raft.ReadOnlySafe,
		Logger:                    logs,
	}
	cfg.PreVote = r.u32() != 0
	cfg.CheckQuorum = r.u32() != 0
	if r.err != nil {
		return nil, fmt.Errorf("config: %v", r.err)
	}
	storage := raft.NewMemoryStorage()
	cfg.Storage = storage
	n := &node{storage: storage, logs: logs}
	if err := n.load(state); err != nil {
		return nil, err
	}
	rn, err := raft.NewRawNode(cfg)
	if err != nil {
		return nil, err
	}
	n.rn = rn
	if p := (&reader{b: peers}); len(peers) > 0 {
		count := p.u32()
		var list []raft.Peer
		for i := uint32(0); i < count && p.err == nil; i++ {
			list = append(list, raft.Peer{ID: p.u64()})
		}
		if p.err != nil {
			return nil, fmt.Errorf("peers: %v", p.err)
		}
		if err := rn.Bootstrap(list); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// load fills the storage with what the caller persisted.
func (n *node) load(state []byte) error {
	if len(state) == 0 {
		return nil
	}
	r := &reader{b: state}
	hs, snap := r.bytes(), r.bytes()
	count := r.u32()
	ents := make([]pb.Entry, 0, count)
	for i := uint32(0); i < count && r.err == nil; i++ {
		var e pb.Entry
		if err := e.Unmarshal(r.bytes()); err != nil {
			return fmt.Errorf("entry %d: %v", i, err)
		}
		ents = append(ents, e)
	}
	if r.err != nil {
		return fmt.Errorf("state: %v", r.err)
	}
	if len(snap) > 0 {
		var s pb.Snapshot
		if err := s.Unmarshal(snap); err != nil {
			return fmt.Errorf("snapshot: %v", err)
		}
		if err := n.storage.ApplySnapshot(s); err != nil {
			return err
		}
		n.conf = s.Metadata.ConfState
	}
	if len(hs) > 0 {
		var h pb.HardState
		if err := h.Unmarshal(hs); err != nil {
			return fmt.Errorf("hard state: %v", err)
		}
		if err := n.storage.SetHardState(h); err != nil {
			return err
		}
	}
	return n.storage.Append(ents)
}

// raftshim_run_on_go_thread calls f(arg) on a thread of the Go runtime and returns when it
// returns. Every call into Go from a thread Go did not create borrows a Go thread context and
// gives it back (Go 1.19: several system calls a call); from a thread Go owns, calls into Go
// are plain callbacks. A node's thread runs its loop this way.
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

//export raftshim_free
func raftshim_free(h C.uint64_t) {
	mu.Lock()
	defer mu.Unlock()
	delete(nodes, uint64(h))
	delete(errLast, uint64(h))
}

//export raftshim_tick
func raftshim_tick(h C.uint64_t) C.int {
	n := get(h)
	if n == nil {
		return errNoHandle
	}
	n.rn.Tick()
	return okCode
}

//export raftshim_campaign
func raftshim_campaign(h C.uint64_t) C.int {
	n := get(h)
	if n == nil {
		return errNoHandle
	}
	return code(n.rn.Campaign())
}

// raftshim_campaign_now: a follower whose leader is `lead` (or which knows no leader in a term
// it gave no vote in, as after another's election failed) starts an election at once, as the target of a
// leadership transfer does (no pre-vote; voters set aside their leader's lease), because the
// caller knows that leader is gone. Nothing happens when the node follows another leader or
// is not a follower. Safety is the election's, as for any campaign: votes still go only to a
// log at least as up to date.
//
//export raftshim_campaign_now
func raftshim_campaign_now(h C.uint64_t, lead C.uint64_t) C.int {
	n := get(h)
	if n == nil {
		return errNoHandle
	}
	st := n.rn.Status()
	stillFollowsIt := st.Lead == uint64(lead)
	// No leader in a term whose election this node did not vote in (its candidate was behind).
	failedElection := st.Lead == raft.None && st.Vote == raft.None
	if st.RaftState != raft.StateFollower || !(stillFollowsIt || failedElection) {
		return okCode
	}
	return code(n.rn.Step(pb.Message{Type: pb.MsgTimeoutNow, From: uint64(lead), To: st.ID, Term: st.Term}))
}

//export raftshim_propose
func raftshim_propose(h C.uint64_t, data *C.char, n C.size_t) C.int {
	nd := get(h)
	if nd == nil {
		return errNoHandle
	}
	return code(nd.rn.Propose(goBytes(data, n)))
}

// raftshim_propose_conf_change proposes one change: `kind` 0 add a voter, 1 remove a node,
// 3 add a learner (raftpb.ConfChangeType); `context` travels with it (the caller's peer URL).
//
//export raftshim_propose_conf_change
func raftshim_propose_conf_change(h C.uint64_t, kind C.uint32_t, id C.uint64_t, ctx *C.char,
	ctxLen C.size_t) C.int {
	n := get(h)
	if n == nil {
		return errNoHandle
	}
	cc := pb.ConfChange{Type: pb.ConfChangeType(kind), NodeID: uint64(id), Context: goBytes(ctx, ctxLen)}
	return code(n.rn.ProposeConfChange(cc))
}

// raftshim_apply_conf_change applies a committed EntryConfChange's data. Out: u32 type, u64
// node id, bytes context, u32 count + u64 voters, u32 count + u64 learners (the configuration
// now).
//
//export raftshim_apply_conf_change
func raftshim_apply_conf_change(h C.uint64_t, data *C.char, n C.size_t, out **C.char,
	outLen *C.size_t) C.int {
	nd := get(h)
	if nd == nil {
		return errNoHandle
	}
	var cc pb.ConfChange
	if err := cc.Unmarshal(goBytes(data, n)); err != nil {
		setError(uint64(h), err)
		return errInvalid
	}
	cs := nd.rn.ApplyConfChange(cc)
	nd.conf = *cs
	w := &writer{}
	w.u32(uint32(cc.Type))
	w.u64(cc.NodeID)
	w.bytes(cc.Context)
	for _, ids := range [][]uint64{cs.Voters, cs.Learners} {
		w.u32(uint32(len(ids)))
		for _, id := range ids {
			w.u64(id)
		}
	}
	cBytes(w.b, out, outLen)
	return okCode
}

//export raftshim_step
func raftshim_step(h C.uint64_t, msg *C.char, n C.size_t) C.int {
	nd := get(h)
	if nd == nil {
		return errNoHandle
	}
	var m pb.Message
	if err := m.Unmarshal(cView(msg, n)); err != nil {
		setError(uint64(h), err)
		return errInvalid
	}
	if raft.IsLocalMsg(m.Type) {
		return errStepLocal
	}
	return code(nd.rn.Step(m))
}

//export raftshim_read_index
func raftshim_read_index(h C.uint64_t, ctx *C.char, n C.size_t) C.int {
	nd := get(h)
	if nd == nil {
		return errNoHandle
	}
	nd.rn.ReadIndex(goBytes(ctx, n))
	return okCode
}

//export raftshim_transfer_leader
func raftshim_transfer_leader(h C.uint64_t, to C.uint64_t) C.int {
	n := get(h)
	if n == nil {
		return errNoHandle
	}
	n.rn.TransferLeader(uint64(to))
	return okCode
}

//export raftshim_report_unreachable
func raftshim_report_unreachable(h C.uint64_t, id C.uint64_t) {
	if n := get(h); n != nil {
		n.rn.ReportUnreachable(uint64(id))
	}
}

//export raftshim_report_snapshot
func raftshim_report_snapshot(h C.uint64_t, id C.uint64_t, failed C.int) {
	if n := get(h); n != nil {
		status := raft.SnapshotFinish
		if failed != 0 {
			status = raft.SnapshotFailure
		}
		n.rn.ReportSnapshot(uint64(id), status)
	}
}

//export raftshim_has_ready
func raftshim_has_ready(h C.uint64_t) C.int {
	n := get(h)
	if n == nil || n.ready != nil {
		return 0
	}
	if n.rn.HasReady() {
		return 1
	}
	return 0
}

// raftshim_ready hands out the next Ready (1), or says there is none (0). Layout:
//
//	u8 has_soft_state, u64 lead, u32 raft_state (0 follower, 1 candidate, 2 leader, 3 pre-candidate)
//	bytes hard_state (protobuf; empty when unchanged), u64 its commit index (0 when unchanged)
//	u32 count, then per read state: u64 index, bytes request_ctx
//	entries to persist (putEntries)
//	bytes snapshot (protobuf; empty for none), u64 its index, u64 its term, bytes its data
//	committed entries to apply (putEntries)
//	u32 count, then per message: u64 to, u32 type, bytes message (protobuf)
//	u8 must_sync
//
// The caller persists the hard state, snapshot and entries (synced when must_sync), sends the
// messages, applies the committed entries, then calls raftshim_advance.
//
//export raftshim_ready
func raftshim_ready(h C.uint64_t, out **C.char, outLen *C.size_t) C.int {
	n := get(h)
	if n == nil {
		return errNoHandle
	}
	if n.ready != nil || !n.rn.HasReady() {
		return 0
	}
	rd := n.rn.Ready()
	n.ready = &rd
	toC(func(w *writer) { putReady(w, &rd) }, out, outLen)
	return 1
}

func putReady(w *writer, rd *raft.Ready) {
	if rd.SoftState != nil {
		w.u8(1)
		w.u64(rd.SoftState.Lead)
		w.u32(uint32(rd.SoftState.RaftState))
	} else {
		w.u8(0)
		w.u64(0)
		w.u32(0)
	}
	if raft.IsEmptyHardState(rd.HardState) {
		w.bytes(nil)
		w.u64(0)
	} else {
		w.proto(&rd.HardState)
		w.u64(rd.HardState.Commit)
	}
	w.u32(uint32(len(rd.ReadStates)))
	for _, rs := range rd.ReadStates {
		w.u64(rs.Index)
		w.bytes(rs.RequestCtx)
	}
	putEntries(w, rd.Entries)
	if raft.IsEmptySnap(rd.Snapshot) {
		w.bytes(nil)
		w.u64(0)
		w.u64(0)
		w.bytes(nil)
	} else {
		w.proto(&rd.Snapshot)
		w.u64(rd.Snapshot.Metadata.Index)
		w.u64(rd.Snapshot.Metadata.Term)
		w.bytes(rd.Snapshot.Data)
	}
	putEntries(w, rd.CommittedEntries)
	w.u32(uint32(len(rd.Messages)))
	for i := range rd.Messages {
		m := &rd.Messages[i]
		w.u64(m.To)
		w.u32(uint32(m.Type))
		w.proto(m)
	}
	if rd.MustSync {
		w.u8(1)
	} else {
		w.u8(0)
	}
}

// raftshim_advance: the last Ready is persisted, sent and applied. Its snapshot, hard state
// and entries go into the library's in-memory log.
//
//export raftshim_advance
func raftshim_advance(h C.uint64_t) C.int {
	n := get(h)
	if n == nil {
		return errNoHandle
	}
	if n.ready == nil {
		return errInvalid
	}
	rd := *n.ready
	n.ready = nil
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := n.storage.ApplySnapshot(rd.Snapshot); err != nil {
			setError(uint64(h), err)
			return errOther
		}
		n.conf = rd.Snapshot.Metadata.ConfState
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		if err := n.storage.SetHardState(rd.HardState); err != nil {
			setError(uint64(h), err)
			return errOther
		}
	}
	if err := n.storage.Append(rd.Entries); err != nil {
		setError(uint64(h), err)
		return errOther
	}
	n.rn.Advance(rd)
	return okCode
}

// raftshim_compact records that the caller's state at `index` (applied) is a snapshot with
// `data` (the caller's description of it), and drops the in-memory log up to `compactTo`
// (at most `index`; the entries between stay for followers a little behind, as etcd keeps its
// catch-up entries). A follower that needs entries at or before `compactTo` gets a snapshot
// message (see raftshim_snapshot_message). Out: the snapshot (protobuf), for the caller to
// persist.
//
//export raftshim_compact
func raftshim_compact(h C.uint64_t, index C.uint64_t, compactTo C.uint64_t, data *C.char, n C.size_t,
	out **C.char, outLen *C.size_t) C.int {
	nd := get(h)
	if nd == nil {
		return errNoHandle
	}
	if compactTo > index {
		setError(uint64(h), fmt.Errorf("compacting to %d, past the snapshot at %d", compactTo, index))
		return errInvalid
	}
	conf := nd.conf
	snap, err := nd.storage.CreateSnapshot(uint64(index), &conf, goBytes(data, n))
	if err != nil {
		setError(uint64(h), err)
		if errors.Is(err, raft.ErrSnapOutOfDate) {
			return errInvalid
		}
		return errOther
	}
	if err := nd.storage.Compact(uint64(compactTo)); err != nil && !errors.Is(err, raft.ErrCompacted) {
		setError(uint64(h), err)
		return errOther
	}
	cBytes(marshal(&snap), out, outLen)
	return okCode
}

// raftshim_snapshot_message rewrites a snapshot message (MsgSnap) the node asked to send so
// that it describes the caller's state now: at applied `index` (its term from the log), with the
// configuration applied so far and `data`. The caller sends that state with it; the follower
// restores it and the leader's progress moves on from `index` (etcd's merged snapshot).
// Out: the message (protobuf).
//
//export raftshim_snapshot_message
func raftshim_snapshot_message(h C.uint64_t, msg *C.char, msgLen C.size_t, index C.uint64_t,
	data *C.char, n C.size_t, out **C.char, outLen *C.size_t) C.int {
	nd := get(h)
	if nd == nil {
		return errNoHandle
	}
	var m pb.Message
	if err := m.Unmarshal(goBytes(msg, msgLen)); err != nil || m.Type != pb.MsgSnap {
		setError(uint64(h), fmt.Errorf("not a snapshot message (%v)", err))
		return errInvalid
	}
	term, err := nd.storage.Term(uint64(index))
	if err != nil {
		setError(uint64(h), fmt.Errorf("the term of index %d: %v", index, err))
		return errOther
	}
	m.Snapshot.Metadata = pb.SnapshotMetadata{Index: uint64(index), Term: term, ConfState: nd.conf}
	m.Snapshot.Data = goBytes(data, n)
	cBytes(marshal(&m), out, outLen)
	return okCode
}

// raftshim_new_cluster_state: the persisted state of a cluster of one made from a member's
// state machine at `index` (--force-new-cluster): a snapshot at `index` and `term` whose
// configuration is `id` alone, and a hard state committing it. Out: bytes snapshot, bytes
// hard state (protobuf).
//
//export raftshim_new_cluster_state
func raftshim_new_cluster_state(id C.uint64_t, index C.uint64_t, term C.uint64_t, out **C.char,
	outLen *C.size_t) C.int {
	snap := pb.Snapshot{Metadata: pb.SnapshotMetadata{Index: uint64(index), Term: uint64(term),
		ConfState: pb.ConfState{Voters: []uint64{uint64(id)}}}}
	hs := pb.HardState{Term: uint64(term), Commit: uint64(index)}
	w := &writer{}
	w.bytes(marshal(&snap))
	w.bytes(marshal(&hs))
	cBytes(w.b, out, outLen)
	return okCode
}

// raftshim_status: the node's status as JSON (id, term, vote, commit, lead, raftState, applied,
// progress by peer id on a leader, leadtransferee).
//
//export raftshim_status
func raftshim_status(h C.uint64_t, out **C.char, outLen *C.size_t) C.int {
	n := get(h)
	if n == nil {
		return errNoHandle
	}
	b, err := n.rn.Status().MarshalJSON()
	if err != nil {
		setError(uint64(h), err)
		return errOther
	}
	cBytes(b, out, outLen)
	return okCode
}

// raftshim_take_logs: the library's log lines since the last call, each "LEVEL message\n".
//
//export raftshim_take_logs
func raftshim_take_logs(h C.uint64_t, out **C.char, outLen *C.size_t) C.int {
	n := get(h)
	if n == nil {
		return errNoHandle
	}
	cBytes(n.logs.take(), out, outLen)
	return okCode
}

func main() {}
