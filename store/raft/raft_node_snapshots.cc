// RaftNode's snapshots: log compaction, sending the state to a follower the log cannot catch up,
// and installing the state a leader sent (raft_node.h).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "store/raft/raft_node.h"

namespace mentat::raft {
namespace {

// A snapshot's id comes from the network: it names a file, so only these characters.
bool SafeId(const std::string& id) {
  if (id.empty() || id.size() > 80) return false;
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  return true;
}

Status WriteAll(int fd, std::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    ssize_t w = ::write(fd, bytes.data(), bytes.size());
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Internal("writing " + path + ": " + strerror(errno));
    bytes.remove_prefix(static_cast<size_t>(w));
  }
  return {};
}

}  // namespace

SnapshotCounts RaftNode::Snapshots() {
  std::lock_guard<std::mutex> lock(mu_);
  return snapshot_counts_;
}

std::string RaftNode::StagedPath(const std::string& id) const { return opts_.snapshot_dir + "/" + id; }

void RaftNode::MaybeCompact() {
  const auto applied = static_cast<uint64_t>(state_.AppliedIndex());
  if (opts_.snapshot_entries == 0 || applied < snapshot_index_ + opts_.snapshot_entries) return;
  const uint64_t compact_to = applied > opts_.catch_up_entries ? applied - opts_.catch_up_entries : 0;
  Json about = {{"applied", applied}, {"revision", state_.CurrentRevision()}};
  auto snap = core_->Compact(applied, compact_to, about.dump());
  // Whatever happens, not again before another `snapshot_entries`: a failure is logged, and
  // only means more log is kept.
  snapshot_index_ = applied;
  Status st = snap ? log_.Compact(*snap, compact_to) : Status(std::unexpected(snap.error()));
  std::lock_guard<std::mutex> lock(mu_);
  if (!st) {
    logs_ += "warning the log could not be compacted at index " + std::to_string(applied) + ": " +
             st.error().message() + "\n";
    return;
  }
  ++snapshot_counts_.taken;
}

void RaftNode::QueueSnapshot(RaftMessage m) {
  auto pinned = state_.PinState();
  const std::string id = "snap-" + std::to_string(opts_.id) + "-" + nonce_ + "-" + std::to_string(++next_snapshot_);
  Json about = {{"id", id}, {"applied", pinned.applied}, {"revision", pinned.revision}};
  auto message = core_->SnapshotMessage(m.bytes, static_cast<uint64_t>(pinned.applied), about.dump());
  std::lock_guard<std::mutex> lock(mu_);
  if (!message) {
    state_.ReleaseState(pinned);
    logs_ += "warning no snapshot for member " + std::to_string(m.to) + ": " + message.error().message() + "\n";
    snapshot_reports_.emplace_back(m.to, true);
    return;
  }
  outgoing_.push_back(OutgoingSnapshot{m.to, pinned, std::move(*message), id});
  snapshot_wake_.notify_all();
}

void RaftNode::SnapshotLoop() {
  for (;;) {
    OutgoingSnapshot out;
    {
      std::unique_lock<std::mutex> lock(mu_);
      snapshot_wake_.wait(lock, [&] { return stopping_ || !outgoing_.empty(); });
      if (stopping_) break;
      out = std::move(outgoing_.front());
      outgoing_.pop_front();
    }
    Status st = transport_.SendSnapshot(out.to, [&](const FrameWriter& frame) -> Status {
      auto lost = [&] { return Unavailable("the connection to member " + std::to_string(out.to) + " failed"); };
      if (!frame(Json{{"id", out.id}}.dump()) || !frame(out.message)) return lost();
      return state_.WriteImage(out.pinned, opts_.snapshot_chunk, [&](std::string_view chunk) -> Status {
        if (!frame(chunk)) return lost();
        return {};
      });
    }, snapshot_stop_.get_token());
    state_.ReleaseState(out.pinned);
    std::lock_guard<std::mutex> lock(mu_);
    snapshot_reports_.emplace_back(out.to, !st);
    if (st) {
      ++snapshot_counts_.sent;
      logs_ += "info sent member " + std::to_string(out.to) + " the state at index " +
               std::to_string(out.pinned.applied) + "\n";
    } else {
      ++snapshot_counts_.failed;
      logs_ += "warning the state could not be sent to member " + std::to_string(out.to) + ": " +
               st.error().message() + "\n";
    }
    wake_.notify_all();
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& out : outgoing_) state_.ReleaseState(out.pinned);
  outgoing_.clear();
}

Status RaftNode::ReceiveSnapshot(const FrameReader& next) {
  if (opts_.snapshot_dir.empty()) return FailedPrecondition("this member takes no snapshots");
  MT_ASSIGN_OR_RETURN(auto head, next());
  Json about = head ? Json::parse(*head, nullptr, false) : Json();
  const std::string id = about.is_object() ? about.value("id", "") : "";
  if (!SafeId(id)) return InvalidArgument("a snapshot stream must begin with its id");
  MT_ASSIGN_OR_RETURN(auto message, next());
  if (!message) return InvalidArgument("snapshot " + id + " has no message");
  const std::string path = StagedPath(id), part = path + ".part";
  int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Internal("staging snapshot " + id + ": " + strerror(errno));
  Status st;
  uint64_t staged = 0;
  for (;;) {
    auto chunk = next();
    if (!chunk) st = std::unexpected(chunk.error());
    if (!chunk || !*chunk) break;
    if (staged += (*chunk)->size(); staged > opts_.max_snapshot_bytes) {
      st = InvalidArgument("snapshot " + id + " is larger than the limit of " +
                           std::to_string(opts_.max_snapshot_bytes) +
                           " bytes (--raft-max-snapshot-mb)");
      break;
    }
    if (st = WriteAll(fd, **chunk, part); !st) break;
  }
  ::close(fd);
  std::error_code ec;
  if (st) std::filesystem::rename(part, path, ec);
  if (!st || ec) {
    std::filesystem::remove(part, ec);
    return st ? Internal("staging snapshot " + id + ": " + ec.message()) : st;
  }
  Receive(std::move(*message));
  return {};
}

Status RaftNode::InstallSnapshot(const RaftSnapshotInfo& snapshot) {
  Json about = Json::parse(snapshot.data, nullptr, false);
  const std::string id = about.is_object() ? about.value("id", "") : "";
  if (!SafeId(id)) {
    return FailedPrecondition("raft: the snapshot at index " + std::to_string(snapshot.index) +
                              " names no state image");
  }
  MT_RETURN_IF_ERROR(state_.InstallImage(StagedPath(id)));
  if (static_cast<uint64_t>(state_.AppliedIndex()) != snapshot.index) {
    return FailedPrecondition("raft: snapshot " + id + " is at index " + std::to_string(snapshot.index) +
                              " but its state at " + std::to_string(state_.AppliedIndex()));
  }
  // Every image staged so far is older than this state.
  std::error_code ec;
  for (const auto& f : std::filesystem::directory_iterator(opts_.snapshot_dir, ec)) {
    std::filesystem::remove(f.path(), ec);
  }
  snapshot_index_ = snapshot.index;
  if (opts_.on_members_changed) opts_.on_members_changed();  // the image carries them
  std::lock_guard<std::mutex> lock(mu_);
  ++snapshot_counts_.installed;
  logs_ += "info installed the leader's state at index " + std::to_string(snapshot.index) +
           " (revision " + std::to_string(state_.CurrentRevision()) + ")\n";
  return {};
}

}  // namespace mentat::raft
