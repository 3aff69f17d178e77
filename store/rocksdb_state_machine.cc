#include "store/rocksdb_state_machine.h"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <iterator>

#include "apis/json_text.h"

namespace mentat {

namespace {

std::string RevisionKey(int64_t rev) {
  std::string k(8, '\0');
  for (int i = 7; i >= 0; --i) {
    k[i] = static_cast<char>(rev & 0xff);
    rev >>= 8;
  }
  return k;
}

int64_t ParseRevisionKey(const rocksdb::Slice& s) {
  int64_t rev = 0;
  for (size_t i = 0; i < 8 && i < s.size(); ++i) rev = (rev << 8) | static_cast<uint8_t>(s[i]);
  return rev;
}

std::unexpected<Error> RocksError(const std::string& what, const rocksdb::Status& s) {
  return Internal(what + ": " + s.ToString());
}

EventType ParseEventType(const std::string& s) {
  if (s == "ADDED") return EventType::kAdded;
  if (s == "DELETED") return EventType::kDeleted;
  return EventType::kModified;
}

}  // namespace

namespace {

// Objects are read by key on every write (is it a create?): bloom filters, in the memtable
// and in every table file, answer "absent" without a search.
rocksdb::ColumnFamilyOptions ObjectsOptions() {
  rocksdb::ColumnFamilyOptions o;
  rocksdb::BlockBasedTableOptions t;
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  o.memtable_prefix_bloom_size_ratio = 0.05;
  o.memtable_whole_key_filtering = true;
  return o;
}

// RocksDB's warnings and errors, in the server's log. Its own info log (DIR/store/LOG, a file
// on the same disk) cannot be used: once a write to it failed, as it does on a full disk, the
// next line RocksDB logs aborts the process (Debian's RocksDB 7.8 keeps its assertions, and its
// log writer asserts that nobody writes after an error), so the first ENOSPC took the server
// down before it could say why.
class ServerLogForRocks : public rocksdb::Logger {
 public:
  ServerLogForRocks() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel() || level == rocksdb::InfoLogLevel::HEADER_LEVEL) return;
    char line[1024];
    int n = vsnprintf(line, sizeof(line), format, ap);
    if (n < 0) return;
    for (n = std::min<int>(n, sizeof(line) - 1); n > 0 && line[n - 1] == '\n';) line[--n] = '\0';
    if (level == rocksdb::InfoLogLevel::WARN_LEVEL) {
      spdlog::warn("rocksdb: {}", line);
    } else {
      spdlog::error("rocksdb: {}", line);
    }
  }
};

}  // namespace

Result<std::unique_ptr<RocksStateMachine>> RocksStateMachine::Open(
    const StateMachineOptions& opts) {
  std::unique_ptr<RocksStateMachine> store(new RocksStateMachine(opts));
  rocksdb::DBOptions db_opts;
  db_opts.create_if_missing = true;
  db_opts.create_missing_column_families = true;
  // Writes only fill the WAL's buffer; the sync thread writes it out and syncs it once per
  // group commit (FlushWAL), instead of one write(2) per revision.
  db_opts.manual_wal_flush = true;
  db_opts.info_log = std::make_shared<ServerLogForRocks>();
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {"objects", ObjectsOptions()},
      {"log", rocksdb::ColumnFamilyOptions()},
      {"raft", rocksdb::ColumnFamilyOptions()},
  };
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  // Made here, so that RocksDB does not log a missing directory as an error.
  std::error_code ec;
  std::filesystem::create_directories(opts.dir, ec);
  auto s = rocksdb::DB::Open(db_opts, opts.dir, cfs, &handles, &store->db_);
  if (!s.ok()) {
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      return MakeError(Code::kUnavailable,
                       "store " + opts.dir + " is in use by another process: " + s.ToString());
    }
    return RocksError("opening store " + opts.dir, s);
  }
  store->meta_ = handles[0];
  store->objects_ = handles[1];
  store->log_ = handles[2];
  store->raft_ = handles[3];
  std::string value;
  s = store->db_->Get(rocksdb::ReadOptions(), store->meta_, "revision", &value);
  if (s.ok()) store->revision_ = std::stoll(value);
  store->durable_revision_ = store->revision_;  // what is on disk at open is durable
  store->requested_revision_ = store->revision_;
  s = store->db_->Get(rocksdb::ReadOptions(), store->meta_, "compacted", &value);
  if (s.ok()) store->compacted_ = std::stoll(value);
  s = store->db_->Get(rocksdb::ReadOptions(), store->meta_, "applied", &value);
  if (s.ok()) store->applied_index_ = std::stoll(value);
  store->syncer_ = std::thread([s = store.get()] { s->SyncLoop(); });
  return store;
}

RocksStateMachine::~RocksStateMachine() {
  if (syncer_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(sync_mu_);
      stopping_sync_ = true;
    }
    sync_cv_.notify_one();
    syncer_.join();
  }
  CloseWatchers();
  if (db_) {
    for (auto& [rev, ls] : list_snapshots_) {
      db_->ReleaseSnapshot(ls.snapshot);
    }
    for (auto* h : {objects_, log_, raft_, meta_}) {
      if (h) db_->DestroyColumnFamilyHandle(h);
    }
    db_->Close();
    delete db_;
  }
}

void RocksStateMachine::CloseWatchers() { watches_.CloseAll("the server is shutting down"); }

int64_t RocksStateMachine::CurrentRevision() {
  std::lock_guard<std::mutex> lock(write_mu_);
  return revision_;
}

Result<std::optional<Json>> RocksStateMachine::Find(const ObjectKey& key) {
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), objects_, StoreKey(key), &value);
  if (s.IsNotFound()) return std::optional<Json>();
  if (!s.ok()) return RocksError("reading " + key.ToString(), s);
  return std::optional<Json>(Json::parse(value));
}

namespace {

constexpr auto kListSnapshotTtl = std::chrono::seconds(60);

std::string HexEncode(const std::string& s) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::optional<std::string> HexDecode(const std::string& s) {
  if (s.size() % 2) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < s.size(); i += 2) {
    auto nib = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    int hi = nib(s[i]), lo = nib(s[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

}  // namespace

const rocksdb::Snapshot* RocksStateMachine::NewListSnapshot(int64_t* revision) {
  std::lock_guard<std::mutex> lock(write_mu_);
  *revision = revision_;
  return db_->GetSnapshot();
}

Result<const rocksdb::Snapshot*> RocksStateMachine::KeptListSnapshot(const std::string& prefix,
                                                                     const std::string& token,
                                                                     std::string* start_after,
                                                                     int64_t* revision) {
  std::lock_guard<std::mutex> lock(snapshots_mu_);
  auto now = std::chrono::steady_clock::now();
  for (auto it = list_snapshots_.begin(); it != list_snapshots_.end();) {
    if (now - it->second.last_used > kListSnapshotTtl) {
      db_->ReleaseSnapshot(it->second.snapshot);
      it = list_snapshots_.erase(it);
    } else {
      ++it;
    }
  }
  if (token.empty()) return nullptr;
  // token: hex("<revision>\n<last key>")
  auto raw = HexDecode(token);
  auto nl = raw ? raw->find('\n') : std::string::npos;
  if (!raw || nl == std::string::npos) return InvalidArgument("invalid continue token");
  int64_t rev = 0;
  try {
    rev = std::stoll(raw->substr(0, nl));
  } catch (...) {
    return InvalidArgument("invalid continue token");
  }
  *start_after = raw->substr(nl + 1);
  if (start_after->rfind(prefix, 0) != 0) {
    return InvalidArgument("continue token belongs to a different list");
  }
  auto it = list_snapshots_.find(rev);
  if (it == list_snapshots_.end()) {
    return MakeError(Code::kGone, "continue token expired (lists keep their revision for " +
                                      std::to_string(kListSnapshotTtl.count()) +
                                      "s); list again from the start");
  }
  it->second.last_used = now;
  *revision = rev;
  return it->second.snapshot;
}

void RocksStateMachine::KeepOrReleaseListSnapshot(const rocksdb::Snapshot* snap, int64_t revision,
                                                  bool more) {
  std::lock_guard<std::mutex> lock(snapshots_mu_);
  bool kept = list_snapshots_.count(revision) && list_snapshots_[revision].snapshot == snap;
  if (kept) return;
  if (more) {
    KeptSnapshot keep{snap, std::chrono::steady_clock::now()};
    if (list_snapshots_.try_emplace(revision, keep).second) return;
    // Another list kept one at this revision already: this one goes.
  }
  db_->ReleaseSnapshot(snap);
}

Result<ListResult> RocksStateMachine::List(const std::string& kind, const ListOptions& opts) {
  ListResult result;
  std::string prefix = kind + "/" + (opts.ns.empty() ? "" : opts.ns + "/");
  std::string start_after;
  MT_ASSIGN_OR_RETURN(
      const rocksdb::Snapshot* snap,
      KeptListSnapshot(prefix, opts.continue_token, &start_after, &result.revision));
  if (!snap) snap = NewListSnapshot(&result.revision);
  rocksdb::ReadOptions ro;
  ro.snapshot = snap;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, objects_));
  std::string last_key;
  bool more = false;
  if (start_after.empty()) {
    it->Seek(prefix);
  } else {
    it->Seek(start_after);
    if (it->Valid() && it->key().ToString() == start_after) it->Next();
  }
  for (; it->Valid() && it->key().starts_with(prefix); it->Next()) {
    if (opts.limit > 0 && result.items.size() + result.raw_items.size() >= opts.limit) {
      more = true;
      break;
    }
    if (opts.raw && !opts.selector) {
      last_key = it->key().ToString();
      result.raw_items.push_back(it->value().ToString());
      continue;
    }
    Json obj = Json::parse(it->value().ToString(), nullptr, false);
    if (obj.is_discarded()) continue;
    if (opts.selector && !opts.selector->Matches(obj)) continue;
    last_key = it->key().ToString();
    if (opts.raw) {
      result.raw_items.push_back(it->value().ToString());
    } else {
      result.items.push_back(std::move(obj));
    }
  }
  auto status = it->status();
  it.reset();
  if (more) result.continue_token = HexEncode(std::to_string(result.revision) + "\n" + last_key);
  KeepOrReleaseListSnapshot(snap, result.revision, more);
  if (!status.ok()) return RocksError("listing " + kind, status);
  return result;
}

namespace {

// The watch event's JSON, {"type":...,"object":<text>}: the API server streams it as is.
std::shared_ptr<std::string> EventJson(EventType type, const std::string& text) {
  auto json = std::make_shared<std::string>();
  json->reserve(text.size() + 32);
  *json += "{\"type\":\"";
  *json += EventTypeName(type);
  *json += "\",\"object\":";
  *json += text;
  *json += '}';
  return json;
}

}  // namespace

Result<int64_t> RocksStateMachine::CommitLocked(std::vector<Change>& changes, int64_t index) {
  if (broken_) return Internal(broken_reason_);
  // Each change takes the next revision of its own, deletions too, so that every watch event
  // has one: a watch resumed from any event's resourceVersion misses none of the others.
  const int64_t first = revision_ + 1;
  const int64_t last = revision_ + static_cast<int64_t>(changes.size());
  StampRevisions(changes, first);
  // Each object is serialized once: the same text goes to the objects column, into the
  // change log's entry, and (as the event's JSON) to every watcher.
  rocksdb::WriteBatch batch;
  std::vector<WatchEventPtr> events;
  events.reserve(changes.size());
  int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  // The commit time lets compaction keep a window measured in time as well as revisions.
  const std::string entry_head = "{\"t\":" + std::to_string(now_ms) + ",\"events\":[";
  for (size_t i = 0; i < changes.size(); ++i) {
    auto& c = changes[i];
    std::string text;
    AppendJson(c.object, &text);
    if (c.type == EventType::kDeleted) {
      batch.Delete(objects_, StoreKey(c.key));
    } else {
      batch.Put(objects_, StoreKey(c.key), text);
    }
    auto json = EventJson(c.type, text);
    batch.Put(log_, RevisionKey(first + i), entry_head + *json + "]}");
    events.push_back(std::make_shared<WatchEvent>(
        WatchEvent{c.type, first + static_cast<int64_t>(i), c.object, std::move(json)}));
    c.json = std::move(text);
  }
  // The last revision (and a replicated log's applied index) commits in the same batch as the
  // data, so a crash can never leave one without the other, nor half a transaction.
  batch.Put(meta_, "revision", std::to_string(last));
  if (index != kLocalWrite) batch.Put(meta_, "applied", std::to_string(index));
  // Group commit: the batch is written now (to the WAL's buffer and the memtables) and made
  // durable by the sync thread, one write and fsync for every writer that arrived meanwhile.
  // Nobody is acknowledged, and no watcher hears of it, before that fsync.
  rocksdb::WriteOptions wo;
  wo.sync = false;
  auto s = db_->Write(wo, &batch);
  if (!s.ok()) return RocksError("writing revisions " + std::to_string(first) + "-" +
                                     std::to_string(last), s);
  revision_ = last;
  if (index != kLocalWrite) applied_index_ = index;
  {
    std::lock_guard<std::mutex> lock(pending_mu_);
    for (auto& e : events) pending_events_.push_back(std::move(e));
  }
  return last;
}

Status RocksStateMachine::WaitDurable(int64_t rev) {
  if (rev == 0) return {};
  std::unique_lock<std::mutex> lock(sync_mu_);
  if (rev > requested_revision_) {
    requested_revision_ = rev;
    sync_cv_.notify_one();
  }
  durable_cv_.wait(lock, [&] { return durable_revision_ >= rev || sync_error_; });
  if (durable_revision_ >= rev) return {};
  return Internal(*sync_error_);
}

void RocksStateMachine::WhenDurable(int64_t rev, std::function<void(Status)> done) {
  Status status;
  {
    std::lock_guard<std::mutex> lock(sync_mu_);
    if (durable_revision_ < rev && !sync_error_) {
      completions_.push_back({rev, std::move(done)});
      // Written at a log index: PublishApplied completes it, no sync needed.
      if (rev <= logged_revision_) return;
      if (rev > requested_revision_) {
        requested_revision_ = rev;
        sync_cv_.notify_one();
      }
      return;
    }
    if (durable_revision_ < rev) status = Internal(*sync_error_);
  }
  done(status);
}

std::vector<RocksStateMachine::Completion> RocksStateMachine::PublishDurableLocked(int64_t target) {
  // Publish in revision order, under sync_mu_ so that Watch never sees an event both in the
  // log it replays and in publication.
  std::deque<WatchEventPtr> events;
  {
    std::lock_guard<std::mutex> p(pending_mu_);
    while (!pending_events_.empty() && pending_events_.front()->revision <= target) {
      events.push_back(std::move(pending_events_.front()));
      pending_events_.pop_front();
    }
  }
  for (const auto& ev : events) watches_.Publish(ev);
  durable_revision_ = std::max(durable_revision_, target);  // an installed image may be past it
  std::vector<Completion> ready;
  auto later = std::partition(completions_.begin(), completions_.end(),
                              [&](const Completion& c) { return c.revision > target; });
  std::move(later, completions_.end(), std::back_inserter(ready));
  completions_.erase(later, completions_.end());
  return ready;
}

void RocksStateMachine::PublishApplied() {
  std::vector<Completion> ready;
  {
    std::lock_guard<std::mutex> lock(sync_mu_);
    if (sync_error_ || logged_revision_ <= durable_revision_) return;
    ready = PublishDurableLocked(logged_revision_);
    durable_cv_.notify_all();
  }
  for (auto& c : ready) c.done(Status());
}

void RocksStateMachine::SyncLoop() {
  std::unique_lock<std::mutex> lock(sync_mu_);
  for (;;) {
    sync_cv_.wait(lock, [&] {
      return stopping_sync_ || (requested_revision_ > durable_revision_ && !sync_error_);
    });
    // On shutdown, what writers still wait for is synced first.
    if (sync_error_ || requested_revision_ <= durable_revision_) return;
    // Revisions are written in order, so every one up to the highest a writer waits for is in
    // the WAL already: one sync makes them all durable.
    int64_t target = requested_revision_;
    lock.unlock();
    rocksdb::Status s = db_->FlushWAL(/*sync=*/opts_.sync);
    lock.lock();
    std::vector<Completion> ready;
    if (!s.ok()) {
      // After a failed fsync the kernel may have dropped the dirty pages: nothing written since
      // the last good sync can be trusted, so the store refuses further writes.
      sync_error_ = "the store's WAL could not be synced (" + s.ToString() +
                    "); restart the server";
      {
        std::lock_guard<std::mutex> w(write_mu_);
        broken_ = true;
        broken_reason_ = *sync_error_;
      }
      ready.swap(completions_);
    } else {
      ready = PublishDurableLocked(target);
    }
    durable_cv_.notify_all();
    Status status;
    if (sync_error_) status = Internal(*sync_error_);
    lock.unlock();
    for (auto& c : ready) c.done(status);
    lock.lock();
  }
}

Result<StateMachine::Applied> RocksStateMachine::ApplyAt(int64_t index,
                                                         std::vector<Change>& changes) {
  Result<Applied> applied = [&] {
    std::lock_guard<std::mutex> lock(write_mu_);
    return ApplyLocked(index, changes);
  }();
  if (applied && index != kLocalWrite && applied->last_revision > 0) {
    // Outside write_mu_: the sync thread takes sync_mu_ before write_mu_.
    std::lock_guard<std::mutex> lock(sync_mu_);
    logged_revision_ = std::max(logged_revision_, applied->last_revision);
  }
  return applied;
}

Result<StateMachine::Applied> RocksStateMachine::ApplyLocked(int64_t index,
                                                             std::vector<Change>& changes) {
  if (index != kLocalWrite && index <= applied_index_) {
    return Applied{};  // already applied: a replay after restart
  }
  for (const auto& c : changes) {
    if (c.key.kind.empty() || c.key.name.empty()) {
      return InvalidArgument("mutation at index " + std::to_string(index) + " has no kind or name");
    }
  }
  if (!changes.empty()) {
    MT_ASSIGN_OR_RETURN(int64_t last, CommitLocked(changes, index));
    return Applied{true, last};
  }
  if (index == kLocalWrite) return Applied{true, 0};
  // An entry with nothing to write (a no-op) advances the applied index only. Nothing waits
  // for it to be durable: if a crash loses it, replaying it writes nothing again, and any
  // later entry's batch, once synced, carries a higher index.
  rocksdb::WriteBatch batch;
  batch.Put(meta_, "applied", std::to_string(index));
  rocksdb::WriteOptions wo;
  wo.sync = false;
  auto s = db_->Write(wo, &batch);
  if (!s.ok()) return RocksError("applying index " + std::to_string(index), s);
  applied_index_ = index;
  return Applied{true, 0};
}

Result<int64_t> RocksStateMachine::NextRevision() {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (broken_) return Internal(broken_reason_);
  return revision_ + 1;
}

int64_t RocksStateMachine::AppliedIndex() {
  std::lock_guard<std::mutex> lock(write_mu_);
  return applied_index_;
}

Result<int64_t> RocksStateMachine::ExportAll(std::vector<Json>* objects) {
  const rocksdb::Snapshot* snap;
  int64_t revision;
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    snap = db_->GetSnapshot();
    revision = revision_;
  }
  rocksdb::ReadOptions ro;
  ro.snapshot = snap;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, objects_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    Json obj = Json::parse(it->value().ToString(), nullptr, false);
    if (obj.is_discarded()) {
      std::string key = it->key().ToString();
      it.reset();
      db_->ReleaseSnapshot(snap);
      return Internal("object " + key + " in the store is not valid JSON");
    }
    objects->push_back(std::move(obj));
  }
  auto status = it->status();
  it.reset();
  db_->ReleaseSnapshot(snap);
  if (!status.ok()) return RocksError("exporting", status);
  return revision;
}

Status RocksStateMachine::ImportAll(const std::vector<Json>& objects, int64_t revision) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (revision_ != 0) return FailedPrecondition("import needs an empty store");
  rocksdb::WriteBatch batch;
  for (const auto& o : objects) batch.Put(objects_, StoreKey(KeyOf(o)), o.dump());
  batch.Put(meta_, "revision", std::to_string(revision));
  // The change log before the snapshot is not part of it: watches resume from here on.
  batch.Put(meta_, "compacted", std::to_string(revision));
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto s = db_->Write(wo, &batch);
  if (!s.ok()) return RocksError("importing", s);
  revision_ = revision;
  compacted_ = revision;
  {
    std::lock_guard<std::mutex> sync_lock(sync_mu_);
    durable_revision_ = revision;
    requested_revision_ = revision;
  }
  return {};
}

Status RocksStateMachine::Compact(int64_t revision) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (revision <= compacted_) return {};
  if (revision > revision_) {
    return InvalidArgument("cannot compact to revision " + std::to_string(revision) +
                           ": the store is at " + std::to_string(revision_));
  }
  // Everything at or below `revision` leaves the change log, and the mark moves, atomically.
  rocksdb::WriteBatch batch;
  batch.DeleteRange(log_, RevisionKey(0), RevisionKey(revision + 1));
  batch.Put(meta_, "compacted", std::to_string(revision));
  rocksdb::WriteOptions wo;
  wo.sync = opts_.sync;
  auto s = db_->Write(wo, &batch);
  if (!s.ok()) return RocksError("compacting", s);
  compacted_ = revision;
  return {};
}

Result<int64_t> RocksStateMachine::CompactToWindow() {
  int64_t target;
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    target = revision_ - opts_.history_revisions;
    if (target <= compacted_) return compacted_;
    // Keep every revision younger than history_age, too: find the first one that is.
    int64_t cutoff_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            (std::chrono::system_clock::now() - opts_.history_age).time_since_epoch())
                            .count();
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), log_));
    for (it->Seek(RevisionKey(compacted_ + 1)); it->Valid(); it->Next()) {
      int64_t rev = ParseRevisionKey(it->key());
      if (rev > target) break;
      Json entry = Json::parse(it->value().ToString(), nullptr, false);
      if (entry.is_object() && entry.value("t", int64_t{0}) > cutoff_ms) {
        target = rev - 1;
        break;
      }
    }
  }
  if (target <= compacted_) return compacted_;
  MT_RETURN_IF_ERROR(Compact(target));
  return target;
}

int64_t RocksStateMachine::CompactedRevision() {
  std::lock_guard<std::mutex> lock(write_mu_);
  return compacted_;
}

Result<WatcherPtr> RocksStateMachine::Watch(const std::string& kind, int64_t from_revision) {
  auto watcher = watches_.NewStream(kind);
  // Holding the sync lock keeps the group committer from publishing while this watcher
  // replays and registers: every durable revision up to durable_revision_ comes from the log,
  // every later one from publication, and none twice.
  std::lock_guard<std::mutex> sync_lock(sync_mu_);
  int64_t current, compacted;
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    current = revision_;
    compacted = compacted_;
  }
  if (from_revision > 0 && from_revision < compacted) {
    return MakeError(Code::kGone, "resourceVersion " + std::to_string(from_revision) +
                                      " is too old: the change log starts at " +
                                      std::to_string(compacted) + "; re-list and watch again");
  }
  if (from_revision > current) {
    return InvalidArgument("resourceVersion " + std::to_string(from_revision) +
                           " is in the future; the store is at " + std::to_string(current));
  }
  int64_t durable = durable_revision_;
  if (from_revision > 0 && from_revision < durable) {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), log_));
    for (it->Seek(RevisionKey(from_revision + 1)); it->Valid(); it->Next()) {
      int64_t rev = ParseRevisionKey(it->key());
      if (rev > durable) break;
      Json entry = Json::parse(it->value().ToString(), nullptr, false);
      if (!entry.is_object() || !entry.contains("events")) continue;
      for (auto& e : entry["events"]) {
        auto json = std::make_shared<std::string>(e.dump());
        watcher->Push(std::make_shared<WatchEvent>(WatchEvent{
            ParseEventType(e.value("type", "")), rev, std::move(e["object"]), std::move(json)}));
      }
    }
  }
  watcher->SetMinRevision(std::max(from_revision > 0 ? from_revision : current, durable));
  watches_.Register(watcher);
  return WatchHub::Handle(std::move(watcher));
}

}  // namespace mentat
