// ClusterMember's membership: the members record the log keeps, the peer port following it,
// learners promoted by the leader once caught up, and the operator's add, remove and
// leadership transfer (cluster_member.h).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>
#include <set>
#include <sstream>

#include "store/raft/cluster_member.h"

namespace mentat::raft {
namespace {

constexpr auto kChangeTimeout = std::chrono::seconds(10);
// A learner whose log is within this many entries of the leader's commit may vote.
constexpr uint64_t kCaughtUp = 16;

std::string Hex(uint64_t id) {
  std::ostringstream out;
  out << std::hex << id;
  return out.str();
}

bool LoopbackHost(const std::string& address) {
  const std::string host = address.substr(0, address.rfind(':'));
  return host == "localhost" || host.rfind("127.", 0) == 0;
}

}  // namespace

std::vector<ClusterMember::Known> ClusterMember::LoadMembers(bool* recorded,
                                                             std::vector<Known>* removed) {
  std::vector<Known> out;
  auto record = state_->Members();
  Json j = record && !record->empty() ? Json::parse(*record, nullptr, false) : Json();
  if (recorded) *recorded = j.is_array();
  if (!j.is_array()) {
    for (const auto& m : opts_.members) out.push_back({m.id, m.name, m.peer_address, false});
    return out;
  }
  for (const auto& m : j) {
    const std::string name = m.value("name", "");
    Known k{MemberId(name), name, m.value("peerURL", ""), m.value("learner", false),
            m.value("removedAt", uint64_t{0})};
    if (!m.value("removed", false)) {
      out.push_back(std::move(k));
    } else if (removed) {
      removed->push_back(std::move(k));
    }
  }
  return out;
}

std::vector<ClusterMember::Known> ClusterMember::Members() { return LoadMembers(); }

bool ClusterMember::SoleVoter() {
  int voters = 0;
  bool self = false;
  for (const auto& m : LoadMembers()) {
    if (m.learner) continue;
    ++voters;
    self = self || m.id == MemberId(opts_.name);
  }
  return voters == 1 && self;
}

mentat::Status ClusterMember::ResolveSelf() {
  MT_ASSIGN_OR_RETURN(std::string recorded, state_->OwnName());
  if (!recorded.empty() && recorded != opts_.name) {
    if (!opts_.name_is_default) {
      return FailedPrecondition("this data directory is member " + recorded + "'s, not " + opts_.name +
                                "'s: start it with --name " + recorded + " (a member's name is its "
                                "identity in the cluster's log), or give " + opts_.name + " a new data directory");
    }
    spdlog::info("cluster member {}: the name this data directory recorded (the host's is {})", recorded,
                 opts_.name);
    opts_.name = recorded;
  }
  if (recorded.empty()) MT_RETURN_IF_ERROR(state_->RecordOwnName(opts_.name));
  if (!opts_.members.empty()) return {};  // --initial-cluster names every member
  // Alone: this member at --peer-listen, else at the address its log recorded, else at none.
  const uint64_t id = MemberId(opts_.name);
  auto members = LoadMembers();
  const Known* me = nullptr;
  for (const auto& m : members) {
    if (m.id == id) me = &m;
  }
  std::string address = opts_.peer_listen.empty() && me ? me->peer_address : opts_.peer_listen;
  if (me && me->peer_address != address) {
    if (members.size() > 1 && !opts_.force_new_cluster) {
      return FailedPrecondition("member " + opts_.name + " has the peer address " + me->peer_address +
                                " in its cluster of " + std::to_string(members.size()) +
                                " members, who reach it there: only a cluster of one can move its "
                                "peer address; start it with --peer-listen " + me->peer_address);
    }
    move_to_ = address;
  }
  opts_.members = {ClusterMemberSpec{opts_.name, address, id}};
  opts_.peer_listen = address;
  return {};
}

mentat::Status ClusterMember::MovePeerAddress() {
  if (!move_to_) return {};
  spdlog::info("cluster member {}: its peer address is now {}", opts_.name, move_to_->empty() ? "none" : *move_to_);
  return WaitFor([&](std::function<void(mentat::Status)> done) {
    node_->ProposeConfChange(ConfChangeType::kAddVoter, id_, {{"name", opts_.name}, {"peerURL", *move_to_}},
                             std::move(done));
  }, "recording the peer address " + *move_to_);
}

std::string ClusterMember::MembersAfter(const AppliedConfChange& cc, uint64_t index) {
  std::map<uint64_t, Known> known;
  std::vector<Known> removed;
  for (auto& m : LoadMembers(nullptr, &removed)) known[m.id] = m;
  for (const auto& m : opts_.members) known.emplace(m.id, Known{m.id, m.name, m.peer_address, false});
  Json context = Json::parse(cc.context, nullptr, false);
  if (cc.type != ConfChangeType::kRemove && context.is_object() && context.contains("name")) {
    known[cc.node] = Known{cc.node, context.value("name", ""), context.value("peerURL", ""), false};
  }
  auto named = [&](uint64_t id) {
    auto it = known.find(id);
    return it != known.end() ? it->second : Known{id, Hex(id), "", false};
  };
  if (cc.type == ConfChangeType::kRemove) {
    removed.push_back(named(cc.node));
    removed.back().removed_at = index;
  }
  Json out = Json::array();
  std::set<uint64_t> in;
  auto add = [&](uint64_t id, bool learner) {
    const Known k = named(id);
    out.push_back({{"name", k.name}, {"peerURL", k.peer_address}, {"learner", learner}});
    in.insert(id);
  };
  for (uint64_t id : cc.voters) add(id, false);
  for (uint64_t id : cc.learners) add(id, true);
  // The removed stay in the record, as etcd keeps removed ids: one that dials is told it was
  // removed (FollowMembers). One added again (its name, so its id) is a member again.
  for (auto it = removed.rbegin(); it != removed.rend(); ++it) {
    if (!in.insert(it->id).second) continue;  // a member, or a later removal of it kept
    out.push_back({{"name", it->name},
                   {"peerURL", it->peer_address},
                   {"removed", true},
                   {"removedAt", it->removed_at}});
  }
  std::sort(out.begin(), out.end(), [](const Json& a, const Json& b) { return a["name"] < b["name"]; });
  return out.dump();
}

void ClusterMember::FollowMembers() {
  bool recorded = false;
  std::vector<Known> removed;
  auto members = LoadMembers(&recorded, &removed);
  std::map<uint64_t, uint64_t> removed_at;
  for (const auto& r : removed) removed_at[r.id] = r.removed_at;
  // Before the links follow: a member just removed is refused from now on, and told why.
  transport_->SetRemoved(removed_at);
  std::map<uint64_t, std::string> want;
  bool self = false;
  for (const auto& m : members) {
    if (m.id == id_) self = true;
    else want[m.id] = m.peer_address;
  }
  for (auto& [id, address] : want) {
    if (peers_.count(id) && peers_[id] == address) continue;
    transport_->AddPeer(id, address);
    peers_[id] = address;
  }
  // A joining member knows the others from --initial-cluster until the log names it: until
  // then no peer goes.
  if (!recorded || (!self && !was_member_)) return;
  for (auto it = peers_.begin(); it != peers_.end();) {
    if (want.count(it->first)) {
      ++it;
      continue;
    }
    transport_->RemovePeer(it->first);
    it = peers_.erase(it);
  }
  if (self) was_member_ = true;
  if (!self && was_member_) LeaveCluster("it applied its own removal");
}

void ClusterMember::ToldRemoved(uint64_t by, uint64_t index) {
  std::lock_guard<std::mutex> lock(mu_);
  told_removed_by_ = by;
  told_removed_at_ = index;
  wake_.notify_all();
}

void ClusterMember::HeardRemoved(uint64_t by, uint64_t index) {
  // Names are ids, so a member removed may be added again under its name. The one told is the
  // member removed when its own record says so too (it applied that removal: a restart after
  // it), or when its log names it (it joined) and has not reached that index; else it was added
  // again after it, and the peer that said so is behind.
  std::vector<Known> removed;
  std::string name = Hex(by);
  for (const auto& m : LoadMembers(nullptr, &removed)) {
    if (m.id == by) name = m.name;
  }
  bool applied_it = false;
  for (const auto& r : removed) applied_it = applied_it || (r.id == id_ && r.removed_at == index);
  const bool before_it = was_member_ && static_cast<uint64_t>(state_->AppliedIndex()) < index;
  if (!applied_it && !before_it) return;
  LeaveCluster("member " + name + " refused it as removed at index " + std::to_string(index));
}

void ClusterMember::LeaveCluster(const std::string& how) {
  if (removed_.exchange(true)) return;
  spdlog::error(
      "cluster member {} was removed from the cluster ({}); it takes no part any more: it refuses "
      "writes and reads, and its /healthz answers 503. Stop it; to join again, start it with a new "
      "data directory after `mt cluster add`",
      opts_.name, how);
  // What is asked of it is refused with this (ReplicatedStore's writes and reads, /healthz).
  const std::string why = "member " + opts_.name +
                          " was removed from the cluster: it takes no writes or reads (ask another "
                          "member; to join again, start it with a new data directory after `mt "
                          "cluster add`)";
  node_->Halt(why);
}

void ClusterMember::PromoteCaughtUpLearners() {
  if (!node_->IsLeader()) return;
  Json status = node_->StatusJson();
  const uint64_t commit = status.value("commit", uint64_t{0});
  for (const auto& m : Members()) {
    if (!m.learner) continue;
    Json progress = status.value("/progress"_json_pointer, Json::object());
    const uint64_t match = progress.contains(Hex(m.id)) ? progress[Hex(m.id)].value("match", uint64_t{0}) : 0;
    if (match + kCaughtUp < commit) continue;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (promoting_) return;
      promoting_ = true;
    }
    spdlog::info("cluster member {}: learner {} caught up (index {} of {}); making it a voter", opts_.name,
                 m.name, match, commit);
    node_->ProposeConfChange(ConfChangeType::kAddVoter, m.id, {{"name", m.name}, {"peerURL", m.peer_address}},
                             [this, name = m.name](mentat::Status st) {
                               if (!st) spdlog::warn("cluster: making {} a voter: {}", name, st.error().message());
                               std::lock_guard<std::mutex> lock(mu_);
                               promoting_ = false;
                             });
    return;  // one change at a time
  }
}

mentat::Status ClusterMember::WaitFor(const std::function<void(std::function<void(mentat::Status)>)>& start,
                              const std::string& what) {
  auto done = std::make_shared<std::promise<mentat::Status>>();
  auto result = done->get_future();
  start([done](mentat::Status st) { done->set_value(std::move(st)); });
  if (result.wait_for(kChangeTimeout) != std::future_status::ready) {
    return Unavailable(what + " was not applied within " + std::to_string(kChangeTimeout.count()) +
                       " s (no leader, no quorum, or another change under way); see mt cluster status");
  }
  return result.get();
}

mentat::Status ClusterMember::AddMember(const std::string& name, const std::string& peer_address) {
  std::lock_guard<std::mutex> change(change_mu_);
  MT_ASSIGN_OR_RETURN(auto parsed, ParseInitialCluster(name + "=" + peer_address, "member"));
  const ClusterMemberSpec& spec = parsed.front();
  for (const auto& m : Members()) {
    if (m.id == id_ && m.peer_address.empty()) {
      return FailedPrecondition("member " + opts_.name + " has no peer port for " + name + " to reach it: "
                                "restart it with --peer-listen HOST:PORT (an address the other members "
                                "reach), then add " + name);
    }
  }
  if (opts_.tls.cert.empty() && !LoopbackHost(spec.peer_address)) {
    return InvalidArgument("member " + name + ": " + spec.peer_address + " is not a loopback address, and "
                           "this cluster has no peer TLS (--peer-cert-file ...) to let a member on "
                           "another machine in");
  }
  for (const auto& m : Members()) {
    if (m.name == name) return MakeError(Code::kAlreadyExists, "member " + name + " is in the cluster already");
    if (m.peer_address == spec.peer_address) {
      return MakeError(Code::kAlreadyExists, "member " + m.name + " has the peer address " + spec.peer_address);
    }
  }
  return WaitFor([&](std::function<void(mentat::Status)> done) {
    node_->ProposeConfChange(ConfChangeType::kAddLearner, spec.id, {{"name", name}, {"peerURL", spec.peer_address}},
                             std::move(done));
  }, "adding " + name);
}

mentat::Status ClusterMember::RemoveMember(const std::string& name) {
  std::lock_guard<std::mutex> change(change_mu_);
  auto members = Members();
  const Known* found = nullptr;
  int voters = 0;
  for (const auto& m : members) {
    if (m.name == name) found = &m;
    if (!m.learner) ++voters;
  }
  if (!found) return NotFound("no member " + name + " in the cluster");
  if (found->id == node_->Leader()) {
    return FailedPrecondition(name + " leads the cluster: hand the leadership to another member first "
                              "(mt cluster transfer-leader NAME)");
  }
  if (!found->learner && voters == 1) return FailedPrecondition(name + " is the cluster's last voter");
  return WaitFor([&](std::function<void(mentat::Status)> done) {
    node_->ProposeConfChange(ConfChangeType::kRemove, found->id, Json::object(), std::move(done));
  }, "removing " + name);
}

mentat::Status ClusterMember::TransferLeader(const std::string& name) {
  std::lock_guard<std::mutex> change(change_mu_);
  uint64_t id = 0;
  for (const auto& m : Members()) {
    if (m.name == name && m.learner) return FailedPrecondition(name + " is a learner: it cannot lead");
    if (m.name == name) id = m.id;
  }
  if (id == 0) return NotFound("no member " + name + " in the cluster");
  const auto deadline = std::chrono::steady_clock::now() + kChangeTimeout;
  while (node_->Leader() != id) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return Unavailable(name + " did not take the leadership within " + std::to_string(kChangeTimeout.count()) + " s");
    }
    node_->TransferLeader(id);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return {};
}

}  // namespace mentat::raft
