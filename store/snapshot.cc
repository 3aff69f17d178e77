#include "store/snapshot.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "apis/sha256.h"
#include "store/local_store.h"

namespace mentat {
namespace fs = std::filesystem;

namespace {

Status WriteFileDurably(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("creating " + tmp, errno);
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return ErrnoError("writing " + tmp, e);
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int e = errno;
    ::close(fd);
    return ErrnoError("syncing " + tmp, e);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoError("renaming " + tmp, errno);
  return {};
}

}  // namespace

Result<std::string> SnapshotText(Snapshotter& store, SnapshotInfo* info) {
  std::vector<Json> objects;
  MT_ASSIGN_OR_RETURN(int64_t revision, store.ExportAll(&objects));
  Json header = {{"format", "mentat-snapshot"},
                 {"version", 1},
                 {"revision", revision},
                 {"objects", objects.size()},
                 {"created", NowRfc3339()}};
  std::string body = header.dump() + "\n";
  for (const auto& o : objects) body += o.dump() + "\n";
  body += Json{{"sha256", Sha256Hex(body)}}.dump() + "\n";
  if (info) *info = {revision, static_cast<int64_t>(objects.size())};
  return body;
}

Result<SnapshotInfo> SaveSnapshot(Snapshotter& store, const std::string& path) {
  SnapshotInfo info;
  MT_ASSIGN_OR_RETURN(std::string text, SnapshotText(store, &info));
  MT_RETURN_IF_ERROR(WriteFileDurably(path, text));
  return info;
}

Result<SnapshotInfo> VerifySnapshot(const std::string& text) {
  auto bad = [](const std::string& why) {
    return MakeError(Code::kInvalidArgument, "not a valid Mentat snapshot: " + why);
  };
  if (text.empty() || text.back() != '\n') return bad("it is truncated (no final newline)");
  size_t last_nl = text.rfind('\n', text.size() - 2);
  if (last_nl == std::string::npos) return bad("it has no checksum line");
  std::string body = text.substr(0, last_nl + 1);
  Json trailer = Json::parse(text.substr(last_nl + 1), nullptr, false);
  if (!trailer.is_object() || !trailer.contains("sha256") || !trailer["sha256"].is_string()) {
    return bad("its last line is not a checksum (truncated?)");
  }
  if (trailer["sha256"] != Sha256Hex(body)) {
    return bad("its checksum does not match its content (corrupted)");
  }
  size_t first_nl = body.find('\n');
  Json header = Json::parse(body.substr(0, first_nl), nullptr, false);
  if (!header.is_object() || header.value("format", "") != "mentat-snapshot") {
    return bad("its header is missing");
  }
  if (header.value("version", 0) != 1) {
    return bad("it is format version " + header.value("version", Json(0)).dump() +
               "; this server reads version 1");
  }
  SnapshotInfo info{header.value("revision", int64_t{-1}), header.value("objects", int64_t{-1})};
  int64_t lines = std::count(body.begin(), body.end(), '\n') - 1;
  if (info.revision < 0 || info.objects != lines) {
    return bad("its header says " + std::to_string(info.objects) + " objects but it holds " +
               std::to_string(lines));
  }
  return info;
}

Result<SnapshotInfo> RestoreSnapshot(const std::string& path, const std::string& dir) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return ErrnoError("reading snapshot " + path, errno);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string text = ss.str();
  MT_ASSIGN_OR_RETURN(SnapshotInfo info, VerifySnapshot(text));
  std::string store_dir = dir + "/store";
  std::error_code ec;
  if (fs::exists(store_dir, ec) && !fs::is_empty(store_dir, ec)) {
    return FailedPrecondition("refusing to restore into " + dir + ": it already holds a store; " +
                              "restore into a new --data-dir");
  }
  std::vector<Json> objects;
  size_t pos = text.find('\n') + 1;
  for (int64_t i = 0; i < info.objects; ++i) {
    size_t nl = text.find('\n', pos);
    Json obj = Json::parse(text.substr(pos, nl - pos), nullptr, false);
    if (!obj.is_object() || KeyOf(obj).name.empty()) {
      return MakeError(Code::kInvalidArgument,
                       "not a valid Mentat snapshot: object " + std::to_string(i + 1) + " is malformed");
    }
    objects.push_back(std::move(obj));
    pos = nl + 1;
  }
  // Build the store beside its final place, then move it in: a failure leaves nothing behind.
  fs::create_directories(dir, ec);
  std::string tmp = dir + "/.store-restoring";
  fs::remove_all(tmp, ec);
  {
    StateMachineOptions o;
    o.dir = tmp;
    MT_ASSIGN_OR_RETURN(auto store, OpenLocalStore(o));
    MT_RETURN_IF_ERROR(store->snapshotter().ImportAll(objects, info.revision));
  }
  fs::remove(store_dir, ec);  // an empty directory, if any
  fs::rename(tmp, store_dir, ec);
  if (ec) return Internal("moving the restored store into " + store_dir + ": " + ec.message());
  return info;
}

Result<std::string> TakeScheduledSnapshot(Snapshotter& store, const std::string& dir, int keep) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Internal("creating " + dir + ": " + ec.message());
  SnapshotInfo info;
  MT_ASSIGN_OR_RETURN(std::string text, SnapshotText(store, &info));
  std::string stamp = NowRfc3339();
  std::replace(stamp.begin(), stamp.end(), ':', '-');
  std::string path = dir + "/snapshot-" + stamp + "-r" + std::to_string(info.revision) + ".snap";
  MT_RETURN_IF_ERROR(WriteFileDurably(path, text));
  // Retention: the names sort by time; drop all but the newest `keep`.
  std::vector<std::string> snaps;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind("snapshot-", 0) == 0 && e.path().extension() == ".snap") snaps.push_back(e.path());
  }
  std::sort(snaps.begin(), snaps.end());
  for (size_t i = 0; i + keep < snaps.size(); ++i) fs::remove(snaps[i], ec);
  return path;
}

}  // namespace mentat
