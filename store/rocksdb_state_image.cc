// RocksStateMachine's state images: the whole state written out for a member too far behind
// (a Raft snapshot), and installed from one.
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <iterator>
#include <memory>

#include "store/rocksdb_state_machine.h"
#include "store/state_image.h"

namespace mentat {
namespace {

// The image's column numbers.
enum Column : uint8_t { kMeta = 0, kObjects = 1, kLog = 2 };

// The marks of the default column family an image carries (numbers), and the members (JSON).
constexpr const char* kMarks[] = {"revision", "compacted", "applied"};
constexpr const char kMembers[] = "members";
// Not in an image: the member's own name stays with its database.
constexpr const char kOwnName[] = "member-name";

int64_t ParseMark(std::string_view v) {
  int64_t out = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return -1;
    out = out * 10 + (c - '0');
  }
  return v.empty() ? -1 : out;
}

}  // namespace

RocksStateMachine::PinnedState RocksStateMachine::PinState() {
  std::lock_guard<std::mutex> lock(write_mu_);
  return PinnedState{db_->GetSnapshot(), applied_index_, revision_};
}

void RocksStateMachine::ReleaseState(const PinnedState& pinned) {
  if (pinned.snapshot) db_->ReleaseSnapshot(pinned.snapshot);
}

Status RocksStateMachine::WriteImage(const PinnedState& pinned, size_t chunk,
                                     const std::function<Status(std::string_view)>& sink) {
  rocksdb::ReadOptions ro;
  ro.snapshot = pinned.snapshot;
  StateImageWriter w;
  for (const char* mark : {kMarks[0], kMarks[1], kMarks[2], kMembers}) {
    std::string value;
    auto s = db_->Get(ro, meta_, mark, &value);
    if (s.IsNotFound()) continue;
    if (!s.ok()) return Internal("state image: reading " + std::string(mark) + ": " + s.ToString());
    w.Add(kMeta, mark, value);
  }
  for (auto [column, family] : {std::pair{kObjects, objects_}, std::pair{kLog, log_}}) {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, family));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      w.Add(column, std::string_view(it->key().data(), it->key().size()),
            std::string_view(it->value().data(), it->value().size()));
      if (w.pending() >= chunk) MT_RETURN_IF_ERROR(sink(w.Take()));
    }
    if (!it->status().ok()) return Internal("state image: reading: " + it->status().ToString());
  }
  w.Finish();
  return sink(w.Take());
}

Status RocksStateMachine::ApplyMembersAt(int64_t index, const std::string& members) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (broken_) return Internal(broken_reason_);
  if (index <= applied_index_) return {};
  rocksdb::WriteBatch batch;
  batch.Put(meta_, kMembers, members);
  batch.Put(meta_, "applied", std::to_string(index));
  if (auto s = db_->Write(rocksdb::WriteOptions(), &batch); !s.ok()) {
    return Internal("applying the members at index " + std::to_string(index) + ": " + s.ToString());
  }
  applied_index_ = index;
  return {};
}

Status RocksStateMachine::ReplaceMembers(const std::string& members) {
  return PutMetaSynced(kMembers, members, "replacing the members");
}

Result<std::string> RocksStateMachine::Members() { return GetMeta(kMembers, "reading the members"); }

Result<std::string> RocksStateMachine::OwnName() { return GetMeta(kOwnName, "reading the member's name"); }

Status RocksStateMachine::RecordOwnName(const std::string& name) {
  return PutMetaSynced(kOwnName, name, "recording the member's name");
}

Result<std::string> RocksStateMachine::GetMeta(const char* key, const char* what) {
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), meta_, key, &value);
  if (s.IsNotFound()) return std::string();
  if (!s.ok()) return Internal(std::string(what) + ": " + s.ToString());
  return value;
}

Status RocksStateMachine::PutMetaSynced(const char* key, const std::string& value, const char* what) {
  std::lock_guard<std::mutex> lock(write_mu_);
  auto s = db_->Put(rocksdb::WriteOptions(), meta_, key, value);
  if (s.ok()) s = db_->FlushWAL(/*sync=*/true);
  if (!s.ok()) return Internal(std::string(what) + ": " + s.ToString());
  return {};
}

Status RocksStateMachine::InstallImage(const std::string& path) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (broken_) return Internal(broken_reason_);
  rocksdb::WriteBatch batch;
  // Everything there now goes, in the same batch as what replaces it.
  for (auto* family : {objects_, log_}) {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), family));
    for (it->SeekToFirst(); it->Valid(); it->Next()) batch.Delete(family, it->key());
    if (!it->status().ok()) return Internal("installing a state image: " + it->status().ToString());
  }
  for (const char* mark : kMarks) batch.Delete(meta_, mark);
  batch.Delete(meta_, kMembers);
  int64_t marks[3] = {0, 0, 0};
  MT_RETURN_IF_ERROR(ReadStateImage(path, [&](uint8_t column, std::string_view key,
                                               std::string_view value) -> Status {
    switch (column) {
      case kObjects: batch.Put(objects_, key, value); return {};
      case kLog: batch.Put(log_, key, value); return {};
      case kMeta:
        if (key == kMembers) {
          batch.Put(meta_, key, value);
          return {};
        }
        for (int i = 0; i < 3; ++i) {
          if (key != kMarks[i]) continue;
          marks[i] = ParseMark(value);
          if (marks[i] < 0) return InvalidArgument("state image: mark " + std::string(key) + " is not a number");
          batch.Put(meta_, key, value);
          return {};
        }
        return InvalidArgument("state image: unknown mark " + std::string(key));
      default:
        return InvalidArgument("state image: unknown column " + std::to_string(column));
    }
  }));
  if (auto s = db_->Write(rocksdb::WriteOptions(), &batch); !s.ok()) {
    return Internal("installing a state image: " + s.ToString());
  }
  if (auto s = db_->FlushWAL(/*sync=*/opts_.sync); !s.ok()) {
    return Internal("syncing an installed state image: " + s.ToString());
  }
  revision_ = marks[0];
  compacted_ = marks[1];
  applied_index_ = marks[2];
  {
    // Events written before and not yet published describe the state replaced.
    std::lock_guard<std::mutex> p(pending_mu_);
    pending_events_.clear();
  }
  watches_.CloseAll("this member's state was replaced by a snapshot from the leader; watch again");
  std::vector<Completion> done;
  {
    std::lock_guard<std::mutex> sync_lock(sync_mu_);
    durable_revision_ = std::max(durable_revision_, revision_);
    requested_revision_ = std::max(requested_revision_, revision_);
    auto later = std::partition(completions_.begin(), completions_.end(),
                                [&](const Completion& c) { return c.revision > durable_revision_; });
    std::move(later, completions_.end(), std::back_inserter(done));
    completions_.erase(later, completions_.end());
  }
  durable_cv_.notify_all();
  for (auto& c : done) c.done(Status{});  // their revisions are on disk now
  return {};
}

}  // namespace mentat
