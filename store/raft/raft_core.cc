#include "store/raft/raft_core.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "store/raft/libraftshim.h"

namespace mentat::raft {
namespace {

// The shim's result codes (shim/raftshim.go).
constexpr int kOk = 0;
constexpr int kNoHandle = -1;
constexpr int kDropped = -2;
constexpr int kInvalid = -3;
constexpr int kStepLocal = -4;

// A buffer the shim malloc'd, freed when it goes.
struct ShimBuffer {
  char* data = nullptr;
  size_t size = 0;
  ~ShimBuffer() { std::free(data); }
  std::string_view view() const { return {data, size}; }
};

// The shim takes its inputs as `char*`; it copies them and never writes to them.
char* In(std::string_view s) { return const_cast<char*>(s.data()); }

// Little-endian layouts, as shim/raftshim.go writes and reads them.
class Writer {
 public:
  void U32(uint32_t v) { Put(&v, 4); }
  void U64(uint64_t v) { Put(&v, 8); }
  void Bytes(std::string_view b) {
    U32(static_cast<uint32_t>(b.size()));
    out_.append(b);
  }
  const std::string& str() const { return out_; }

 private:
  void Put(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  uint8_t U8() { return Take<uint8_t>(); }
  uint32_t U32() { return Take<uint32_t>(); }
  uint64_t U64() { return Take<uint64_t>(); }
  std::string Bytes() {
    uint32_t n = U32();
    if (!ok_ || b_.size() < n) return Fail<std::string>();
    std::string v(b_.substr(0, n));
    b_.remove_prefix(n);
    return v;
  }
  bool ok() const { return ok_; }

 private:
  template <typename T>
  T Take() {
    if (!ok_ || b_.size() < sizeof(T)) return Fail<T>();
    T v;
    std::memcpy(&v, b_.data(), sizeof(T));
    b_.remove_prefix(sizeof(T));
    return v;
  }
  template <typename T>
  T Fail() {
    ok_ = false;
    return T{};
  }
  std::string_view b_;
  bool ok_ = true;
};

std::vector<RaftEntry> ReadEntries(Reader& r) {
  std::vector<RaftEntry> out(r.U32());
  for (auto& e : out) {
    e.index = r.U64();
    e.term = r.U64();
    e.type = static_cast<EntryType>(r.U32());
    e.data = r.Bytes();
    e.raw = r.Bytes();
  }
  return out;
}

std::vector<uint64_t> ReadIds(Reader& r) {
  std::vector<uint64_t> ids(r.U32());
  for (auto& id : ids) id = r.U64();
  return ids;
}

std::string LastError(uint64_t handle) {
  ShimBuffer b;
  raftshim_last_error(handle, &b.data, &b.size);
  return std::string(b.view());
}

}  // namespace

std::vector<RaftMessage> TakeSendableBeforeSync(RaftReady& rd, bool leader) {
  std::vector<RaftMessage> early;
  // The library committed entries this Ready is yet to persist (one voter): its appends (to
  // learners) would carry that commit index, so they wait for step 1.
  if (!leader || (!rd.entries.empty() && rd.commit >= rd.entries.front().index)) return early;
  auto later = std::stable_partition(rd.messages.begin(), rd.messages.end(), [](const RaftMessage& m) {
    return m.type == kMsgApp || m.type == kMsgHeartbeat;
  });
  early.assign(std::make_move_iterator(rd.messages.begin()), std::make_move_iterator(later));
  rd.messages.erase(rd.messages.begin(), later);
  return early;
}

Result<std::unique_ptr<RaftCore>> RaftCore::Start(const RaftConfig& c, const PersistedRaftState& state,
                                                  const std::vector<uint64_t>& bootstrap_peers) {
  if (c.id == 0) return InvalidArgument("raft: a node's id must not be 0");
  Writer config;
  config.U64(c.id);
  config.U32(static_cast<uint32_t>(c.election_tick));
  config.U32(static_cast<uint32_t>(c.heartbeat_tick));
  config.U64(c.max_size_per_msg);
  config.U32(static_cast<uint32_t>(c.max_inflight_msgs));
  config.U64(c.max_uncommitted_size);
  config.U64(c.applied);
  config.U32(c.pre_vote ? 1 : 0);
  config.U32(c.check_quorum ? 1 : 0);
  Writer persisted;
  persisted.Bytes(state.hard_state);
  persisted.Bytes(state.snapshot);
  persisted.U32(static_cast<uint32_t>(state.entries.size()));
  for (const auto& e : state.entries) persisted.Bytes(e);
  Writer peers;
  if (!bootstrap_peers.empty()) {
    peers.U32(static_cast<uint32_t>(bootstrap_peers.size()));
    for (uint64_t p : bootstrap_peers) peers.U64(p);
  }
  uint64_t h = raftshim_new(In(config.str()), config.str().size(), In(persisted.str()),
                            persisted.str().size(), In(peers.str()), peers.str().size());
  if (h == 0) return FailedPrecondition("raft: cannot start node " + std::to_string(c.id) + ": " + LastError(0));
  return std::unique_ptr<RaftCore>(new RaftCore(h, c.id));
}

RaftCore::~RaftCore() { raftshim_free(handle_); }

Status RaftCore::Check(int code, const char* what) const {
  switch (code) {
    case kOk:
    case kStepLocal:
      return {};
    case kDropped:
      return Unavailable(std::string("raft: ") + what + " dropped: node " + std::to_string(id_) +
                         " knows no leader, or the leader is being transferred, or too much is "
                         "uncommitted");
    case kNoHandle:
      return Internal("raft: node " + std::to_string(id_) + " is gone");
    case kInvalid:
      return InvalidArgument(std::string("raft: ") + what + ": " + LastError(handle_));
    default:
      return Internal(std::string("raft: ") + what + ": " + LastError(handle_));
  }
}

void RaftCore::Tick() { raftshim_tick(handle_); }

Status RaftCore::Campaign() { return Check(raftshim_campaign(handle_), "campaign"); }

Status RaftCore::CampaignNow(uint64_t lead) { return Check(raftshim_campaign_now(handle_, lead), "campaign"); }

Status RaftCore::Propose(std::string_view data) {
  return Check(raftshim_propose(handle_, In(data), data.size()), "proposal");
}

Status RaftCore::ProposeConfChange(ConfChangeType type, uint64_t node, std::string_view context) {
  return Check(raftshim_propose_conf_change(handle_, static_cast<uint32_t>(type), node, In(context),
                                            context.size()),
               "configuration change");
}

Result<AppliedConfChange> RaftCore::ApplyConfChange(std::string_view data) {
  ShimBuffer b;
  MT_RETURN_IF_ERROR(
      Check(raftshim_apply_conf_change(handle_, In(data), data.size(), &b.data, &b.size),
            "configuration change"));
  Reader r(b.view());
  AppliedConfChange out;
  out.type = static_cast<ConfChangeType>(r.U32());
  out.node = r.U64();
  out.context = r.Bytes();
  out.voters = ReadIds(r);
  out.learners = ReadIds(r);
  if (!r.ok()) return Internal("raft: the shim's configuration change is truncated");
  return out;
}

Status RaftCore::Step(std::string_view message) {
  return Check(raftshim_step(handle_, In(message), message.size()), "message");
}

void RaftCore::ReadIndex(std::string_view ctx) { raftshim_read_index(handle_, In(ctx), ctx.size()); }

void RaftCore::TransferLeader(uint64_t to) { raftshim_transfer_leader(handle_, to); }

void RaftCore::ReportUnreachable(uint64_t peer) { raftshim_report_unreachable(handle_, peer); }

void RaftCore::ReportSnapshot(uint64_t peer, bool failed) {
  raftshim_report_snapshot(handle_, peer, failed ? 1 : 0);
}

std::optional<RaftReady> RaftCore::Ready() {
  ShimBuffer b;
  if (raftshim_ready(handle_, &b.data, &b.size) != 1) return std::nullopt;
  Reader r(b.view());
  RaftReady rd;
  bool has_soft = r.U8() != 0;
  uint64_t lead = r.U64();
  auto role = static_cast<RaftRole>(r.U32());
  if (has_soft) rd.soft_state = std::make_pair(lead, role);
  rd.hard_state = r.Bytes();
  rd.commit = r.U64();
  rd.read_states.resize(r.U32());
  for (auto& rs : rd.read_states) {
    rs.index = r.U64();
    rs.request_ctx = r.Bytes();
  }
  rd.entries = ReadEntries(r);
  RaftSnapshotInfo snap;
  snap.raw = r.Bytes();
  snap.index = r.U64();
  snap.term = r.U64();
  snap.data = r.Bytes();
  if (!snap.raw.empty()) rd.snapshot = std::move(snap);
  rd.committed = ReadEntries(r);
  rd.messages.resize(r.U32());
  for (auto& m : rd.messages) {
    m.to = r.U64();
    m.type = r.U32();
    m.bytes = r.Bytes();
  }
  rd.must_sync = r.U8() != 0;
  if (!r.ok()) std::abort();  // the shim and this reader disagree on the layout: a build bug
  return rd;
}

Status RaftCore::Advance() { return Check(raftshim_advance(handle_), "advance"); }

Result<RaftSnapshotInfo> RaftCore::Compact(uint64_t index, uint64_t compact_to, std::string_view data) {
  ShimBuffer b;
  MT_RETURN_IF_ERROR(Check(raftshim_compact(handle_, index, compact_to, In(data), data.size(), &b.data,
                                            &b.size),
                           "compaction"));
  RaftSnapshotInfo out;
  out.raw = std::string(b.view());
  out.index = index;
  out.data = std::string(data);
  return out;
}

Result<std::string> RaftCore::SnapshotMessage(std::string_view message, uint64_t index,
                                              std::string_view data) {
  ShimBuffer b;
  MT_RETURN_IF_ERROR(Check(raftshim_snapshot_message(handle_, In(message), message.size(), index,
                                                     In(data), data.size(), &b.data, &b.size),
                           "snapshot message"));
  return std::string(b.view());
}

Result<PersistedRaftState> RaftCore::NewClusterState(uint64_t id, uint64_t index, uint64_t term) {
  ShimBuffer b;
  if (raftshim_new_cluster_state(id, index, term, &b.data, &b.size) != kOk) {
    return Internal("raft: the shim could not make a new cluster's state");
  }
  Reader r(b.view());
  PersistedRaftState out;
  out.snapshot = r.Bytes();
  out.hard_state = r.Bytes();
  if (!r.ok()) return Internal("raft: the shim's new cluster state is truncated");
  return out;
}

void RaftCore::RunOnGoThread(const std::function<void()>& task) {
  raftshim_run_on_go_thread([](void* t) { (*static_cast<const std::function<void()>*>(t))(); },
                            const_cast<std::function<void()>*>(&task));
}

Json RaftCore::StatusJson() const {
  ShimBuffer b;
  if (raftshim_status(handle_, &b.data, &b.size) != kOk) return Json::object();
  return Json::parse(b.view(), nullptr, /*allow_exceptions=*/false);
}

std::string RaftCore::TakeLogs() {
  ShimBuffer b;
  raftshim_take_logs(handle_, &b.data, &b.size);
  return std::string(b.view());
}

}  // namespace mentat::raft
