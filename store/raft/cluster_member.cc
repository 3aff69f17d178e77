#include "store/raft/cluster_member.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include <sstream>

#include "store/raft/force_new_cluster.h"

namespace mentat::raft {
namespace {

std::string Hex(uint64_t id) {
  std::ostringstream out;
  out << std::hex << id;
  return out.str();
}

// The library's lines ("LEVEL message") at their level.
void LogRaftLines(const std::string& lines, const std::string& member) {
  std::istringstream in(lines);
  for (std::string line; std::getline(in, line);) {
    auto space = line.find(' ');
    std::string level = line.substr(0, space);
    std::string msg = space == std::string::npos ? "" : line.substr(space + 1);
    if (level == "error") {
      spdlog::error("raft {}: {}", member, msg);
    } else if (level == "warning") {
      spdlog::warn("raft {}: {}", member, msg);
    } else {
      spdlog::info("raft {}: {}", member, msg);
    }
  }
}

}  // namespace

Result<std::unique_ptr<ClusterMember>> ClusterMember::Start(ClusterMemberOptions opts) {
  if (!opts.members.empty()) MT_RETURN_IF_ERROR(FindMember(opts.members, opts.name));
  std::unique_ptr<ClusterMember> m(new ClusterMember(std::move(opts)));
  MT_ASSIGN_OR_RETURN(m->state_, RocksStateMachine::Open(m->opts_.state));
  MT_RETURN_IF_ERROR(m->ResolveSelf());
  MT_ASSIGN_OR_RETURN(ClusterMemberSpec self, FindMember(m->opts_.members, m->opts_.name));
  m->id_ = self.id;
  if (m->opts_.force_new_cluster) {
    auto forced = ForceNewCluster(*m->state_, self);
    if (!forced) return std::unexpected(forced.error());
    m->move_to_.reset();  // the new cluster of one records this member at its address already
  }

  PeerTransportOptions to;
  to.self = self.id;
  to.cluster = m->opts_.cluster;
  to.listen = m->opts_.peer_listen.empty() ? self.peer_address : m->opts_.peer_listen;  // "": none
  if (!m->opts_.tls.cert.empty()) {
    MT_ASSIGN_OR_RETURN(to.tls, PeerTls::Load(m->opts_.tls));
  }
  MT_ASSIGN_OR_RETURN(m->transport_, PeerTransport::Start(to));
  // Before any peer is dialed: the first answer may be that this member was removed.
  m->transport_->SetRemovedHandler(
      [raw = m.get()](uint64_t by, uint64_t index) { raw->ToldRemoved(by, index); });
  for (const auto& peer : m->LoadMembers()) {
    if (peer.id == self.id) continue;
    m->transport_->AddPeer(peer.id, peer.peer_address);
    m->peers_[peer.id] = peer.peer_address;
  }

  RaftNodeOptions ro = m->opts_.raft;
  ro.id = self.id;
  ro.bootstrap_peers.clear();
  if (!m->opts_.join_existing) {
    for (const auto& peer : m->opts_.members) ro.bootstrap_peers.push_back(peer.id);
  }
  ro.campaign_at_start = !m->opts_.join_existing && m->SoleVoter();
  ro.members_after = [raw = m.get()](const AppliedConfChange& cc, uint64_t index) {
    return raw->MembersAfter(cc, index);
  };
  ro.on_members_changed = [raw = m.get()] {
    std::lock_guard<std::mutex> lock(raw->mu_);
    raw->members_changed_ = true;
    raw->wake_.notify_all();
  };
  ro.on_leader_change = [raw = m.get()] {
    std::lock_guard<std::mutex> lock(raw->mu_);
    raw->leadership_changed_ = true;
    raw->wake_.notify_all();
  };
  MT_ASSIGN_OR_RETURN(m->node_, RaftNode::Start(ro, *m->state_, *m->transport_));
  m->transport_->SetHandlers([n = m->node_.get()](std::string msg) { n->Receive(std::move(msg)); },
                             [n = m->node_.get()](uint64_t peer) { n->ReportUnreachable(peer); },
                             [n = m->node_.get()](uint64_t, const FrameReader& next) {
                               return n->ReceiveSnapshot(next);
                             });
  m->transport_->SetGoneHandler([raw = m.get()](uint64_t peer) { raw->PeerGone(peer); });
  m->store_ = std::make_unique<ReplicatedStore>(*m->state_, *m->node_);
  m->thread_ = std::thread([raw = m.get()] { raw->Loop(); });
  MT_RETURN_IF_ERROR(m->MovePeerAddress());
  return m;
}

ClusterMember::~ClusterMember() { Stop(); }

void ClusterMember::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (transport_) transport_->SetHandlers(nullptr, nullptr);
  if (transport_) transport_->SetGoneHandler(nullptr);
  if (transport_) transport_->SetRemovedHandler(nullptr);
  if (node_) node_->Stop();
  if (transport_) transport_->Stop();
  if (state_) state_->CloseWatchers();
  if (node_) LogRaftLines(node_->TakeLogs(), opts_.name);
}

void ClusterMember::Loop() {
  bool leader = false;
  for (;;) {
    bool members_changed = false;
    uint64_t told_by = 0, told_at = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      if (gone_leader_ != 0) until = std::min(until, campaign_at_);
      // A campaign newly scheduled (PeerGone) wakes the loop to wait for its time instead.
      wake_.wait_until(lock, until, [&] {
        return stopping_ || leadership_changed_ || members_changed_ || campaign_scheduled_ ||
               told_removed_by_ != 0 ||
               (gone_leader_ != 0 && std::chrono::steady_clock::now() >= campaign_at_);
      });
      campaign_scheduled_ = false;
      if (stopping_) return;
      leadership_changed_ = false;
      members_changed = std::exchange(members_changed_, false);
      told_by = std::exchange(told_removed_by_, 0);
      told_at = told_removed_at_;
    }
    CampaignIfDue();
    LogRaftLines(node_->TakeLogs(), opts_.name);
    if (members_changed) FollowMembers();
    if (told_by != 0) HeardRemoved(told_by, told_at);
    ClosePeerPortOnceHalted();
    PromoteCaughtUpLearners();
    bool now = node_->IsLeader();
    if (now == leader) continue;
    leader = now;
    spdlog::info("cluster member {} {} the leadership", opts_.name, leader ? "took" : "lost");
  }
}

void ClusterMember::PeerGone(uint64_t peer) {
  // The leader this member followed last: still its leader, or none known since (another's
  // campaign began, and may fail).
  const uint64_t leader = node_->Leader();
  if (node_->LastLeader() != peer || (leader != peer && leader != 0)) return;
  // The voters but the gone one, by id: the first campaigns at once; should it fail (its log
  // behind another's) or be slow, each next one campaigns kSuccessorStep after the one before
  // it, with a pre-vote, which cannot unseat a candidate or leader the others already follow.
  std::vector<uint64_t> line;
  for (const auto& m : Members()) {
    if (m.id != peer && !m.learner) line.push_back(m.id);
  }
  std::sort(line.begin(), line.end());
  const auto rank = std::find(line.begin(), line.end(), id_) - line.begin();
  if (rank == static_cast<long>(line.size())) return;  // not a voter
  std::lock_guard<std::mutex> lock(mu_);
  if (gone_leader_ == peer) return;  // on its way
  gone_leader_ = peer;
  first_in_line_ = rank == 0;
  campaign_at_ = std::chrono::steady_clock::now() + rank * kSuccessorStep;
  campaign_scheduled_ = true;
  wake_.notify_all();
}

void ClusterMember::CampaignIfDue() {
  uint64_t gone = 0;
  bool first = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (gone_leader_ == 0 || std::chrono::steady_clock::now() < campaign_at_) return;
    gone = std::exchange(gone_leader_, 0);
    first = first_in_line_;
  }
  if (const uint64_t leader = node_->Leader(); leader != gone && leader != 0) return;  // one was elected
  spdlog::info("cluster member {}: the leader's peer port refuses connections (its process is gone); "
               "this member, {} in line to follow it, starts an election now",
               opts_.name, first ? "first" : "next");
  if (first) {
    node_->CampaignNow(gone);
  } else {
    node_->Campaign();
  }
}

void ClusterMember::ClosePeerPortOnceHalted() {
  if (peer_port_closed_) return;
  const std::string why = node_->Halted();
  if (why.empty()) return;
  // Its port refusing them, the others report this member unhealthy, and elect another leader
  // at once if it led (PeerGone) rather than after an election timeout.
  spdlog::error("cluster member {} closes its peer port: {}", opts_.name, why);
  peer_port_closed_ = true;
  transport_->Stop();
}

mentat::Status ClusterMember::Health() {
  if (const std::string why = node_->Halted(); !why.empty()) return Unavailable(why);
  return {};
}

Json ClusterMember::Status() {
  Json raft = node_->StatusJson();
  const uint64_t leader = node_->Leader();
  const bool leading = leader == id_;
  Json members = Json::array();
  std::string leader_name;
  bool listed = false;
  for (const auto& m : Members()) {
    if (m.id == leader) leader_name = m.name;
    Json j = {{"name", m.name},
              {"peerURL", m.peer_address},
              {"role", m.id == leader ? "leader" : m.learner ? "learner" : "follower"},
              {"voter", !m.learner}};
    if (m.id == id_) {
      listed = true;
      AddOwnStatus(j);
    } else {
      Json progress = raft.value("/progress"_json_pointer, Json::object());
      j["applied"] = leading && progress.contains(Hex(m.id)) ? progress[Hex(m.id)]["match"] : Json();
      j["healthy"] = transport_->Stats(m.id).connected;
    }
    members.push_back(std::move(j));
  }
  // Once it applied its own removal, its record no longer names it: it still reports itself.
  if (!listed && removed_) {
    auto self = FindMember(opts_.members, opts_.name);
    Json j = {{"name", opts_.name}, {"peerURL", self ? self->peer_address : ""}};
    AddOwnStatus(j);
    members.push_back(std::move(j));
  }
  return {{"leader", leader_name}, {"term", raft.value("term", 0)}, {"members", members}};
}

void ClusterMember::AddOwnStatus(Json& entry) {
  entry["applied"] = state_->AppliedIndex();
  const auto health = Health();
  entry["healthy"] = health.has_value();
  if (!health) entry["reason"] = health.error().message();
  if (removed_) {
    entry["role"] = "removed";
    entry["voter"] = false;
  }
}

}  // namespace mentat::raft
