#include "apis/artifacts/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "apis/object.h"
#include "apis/service.h"

namespace mentat {
namespace fs = std::filesystem;

namespace {

Status FsyncPath(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("opening " + path, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoError("fsync " + path, err);
  return {};
}

std::string MiB(uint64_t bytes) {
  if (bytes % (1 << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes) + " bytes";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ArtifactUpload

ArtifactUpload::ArtifactUpload(int fd, std::string path, uint64_t max_bytes)
    : fd_(fd), path_(std::move(path)), max_bytes_(max_bytes) {}

ArtifactUpload::~ArtifactUpload() { Discard(); }

void ArtifactUpload::Discard() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!finished_) ::unlink(path_.c_str());
  finished_ = true;  // nothing left to remove
}

Status ArtifactUpload::Write(const char* data, size_t n) {
  if (fd_ < 0) return Internal("artifact upload already finished");
  if (size_ + n > max_bytes_) {
    return MakeError(Code::kTooLarge, "artifact is over the server's limit of " + MiB(max_bytes_));
  }
  sha_.Update(data, n);
  size_t off = 0;
  while (off < n) {
    ssize_t w = ::write(fd_, data + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return ErrnoError("writing artifact upload " + path_, errno);
    off += static_cast<size_t>(w);
  }
  size_ += n;
  return {};
}

// ---------------------------------------------------------------------------------------------
// ArtifactStore

Result<std::unique_ptr<ArtifactStore>> ArtifactStore::Open(const std::string& dir,
                                                           uint64_t max_bytes) {
  std::error_code ec;
  for (const char* sub : {"/sha256", "/tmp"}) {
    fs::create_directories(dir + sub, ec);
    if (ec) return Internal("creating " + dir + sub + ": " + ec.message());
  }
  // Uploads a crash cut short: never named, never referenced.
  for (const auto& e : fs::directory_iterator(dir + "/tmp", ec)) fs::remove(e.path(), ec);
  return std::unique_ptr<ArtifactStore>(new ArtifactStore(dir, max_bytes));
}

std::string ArtifactStore::PathOf(const std::string& digest) const {
  return dir_ + "/sha256/" + digest.substr(sizeof(kArtifactDigestPrefix) - 1);
}

std::optional<ArtifactInfo> ArtifactStore::Stat(const std::string& digest) const {
  if (!IsArtifactDigest(digest)) return std::nullopt;
  struct stat st {};
  if (::stat(PathOf(digest).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return ArtifactInfo{digest, static_cast<uint64_t>(st.st_size),
                      FormatTime(std::chrono::system_clock::from_time_t(st.st_mtime))};
}

Result<std::vector<ArtifactInfo>> ArtifactStore::List() const {
  std::vector<ArtifactInfo> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_ + "/sha256", ec)) {
    if (auto info = Stat(kArtifactDigestPrefix + e.path().filename().string())) {
      out.push_back(std::move(*info));
    }
  }
  if (ec) return Internal("listing " + dir_ + "/sha256: " + ec.message());
  std::sort(out.begin(), out.end(),
            [](const ArtifactInfo& a, const ArtifactInfo& b) { return a.digest < b.digest; });
  return out;
}

Result<std::unique_ptr<ArtifactUpload>> ArtifactStore::Begin() {
  std::string tmpl = dir_ + "/tmp/upload-XXXXXX";
  int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) return ErrnoError("creating an artifact upload in " + dir_ + "/tmp", errno);
  return std::unique_ptr<ArtifactUpload>(new ArtifactUpload(fd, tmpl, max_bytes_));
}

Result<ArtifactStore::Committed> ArtifactStore::Commit(ArtifactUpload& up,
                                                       const std::string& digest) {
  if (up.fd_ < 0) return Internal("artifact upload already finished");
  std::string got = up.sha_.Finish();
  if (got != digest) {
    up.Discard();
    return MakeError(Code::kInvalidArgument,
                     "the body does not match its digest: it hashes to " + got + ", not " + digest,
                     {{"digest", 0, 0,
                       "the " + std::to_string(up.size_) + " bytes sent hash to " + got +
                           "; upload an artifact under its own sha256"}});
  }
  if (::fsync(up.fd_) != 0) return ErrnoError("fsync " + up.path_, errno);
  ::close(up.fd_);
  up.fd_ = -1;
  Committed out;
  if (auto existing = Stat(digest)) {
    out.info = *existing;  // the same bytes, stored already: keep the first copy
    up.Discard();
  } else {
    // Artifacts are read-only from here on, for the server and everyone who fetches them.
    ::chmod(up.path_.c_str(), 0444);
    if (::rename(up.path_.c_str(), PathOf(digest).c_str()) != 0) {
      return ErrnoError("storing artifact " + digest, errno);
    }
    up.finished_ = true;
    MT_RETURN_IF_ERROR(FsyncPath(dir_ + "/sha256"));
    out.created = true;
    auto info = Stat(digest);
    if (!info) return Internal("artifact " + digest + " vanished as it was stored");
    out.info = *info;
  }
  Touch(digest);
  return out;
}

void ArtifactStore::Touch(const std::string& digest) {
  std::lock_guard<std::mutex> lock(mu_);
  last_used_[digest] = std::chrono::steady_clock::now();
}

Result<std::vector<std::string>> ArtifactStore::CollectGarbage(
    const std::set<std::string>& referenced, std::chrono::seconds grace) {
  MT_ASSIGN_OR_RETURN(auto stored, List());
  std::vector<std::string> deleted;
  auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& a : stored) {
    if (referenced.count(a.digest)) continue;
    auto [it, first_look] = last_used_.emplace(a.digest, now);
    if (first_look || now - it->second < grace) continue;
    // Under mu_: a HEAD or an apply that touches it now waits, and then finds it gone.
    if (::unlink(PathOf(a.digest).c_str()) != 0 && errno != ENOENT) {
      spdlog::warn("artifact garbage collection: removing {}: {}", a.digest, strerror(errno));
      continue;
    }
    last_used_.erase(it);
    deleted.push_back(a.digest);
  }
  // What was asked for but never stored (HEADs of uploads that did not follow) is forgotten.
  std::set<std::string> names;
  for (const auto& a : stored) names.insert(a.digest);
  for (auto it = last_used_.begin(); it != last_used_.end();) {
    bool stale = !names.count(it->first) && now - it->second >= grace;
    it = stale ? last_used_.erase(it) : std::next(it);
  }
  if (!deleted.empty()) MT_RETURN_IF_ERROR(FsyncPath(dir_ + "/sha256"));
  return deleted;
}

}  // namespace mentat
