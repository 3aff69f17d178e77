// The server's content-addressed artifact store: the app rootfs archives `mt apply` packs and
// uploads, kept as files under DATA_DIR/artifacts, one per sha256 digest. An upload goes to a
// temp file, is checked against the digest it was sent for, fsynced, and renamed into place
// (then the directory is fsynced): a file under a digest's name is always whole and always
// hashes to it. It knows no HTTP: the server's routes feed an upload as its body arrives.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "apis/error.h"
#include "apis/sha256.h"

namespace mentat {

struct ArtifactInfo {
  std::string digest;      // "sha256:<64 hex>"
  uint64_t size = 0;       // bytes
  std::string created_at;  // RFC 3339: when it was stored
};

// An upload in progress: a temp file and the running sha256 of what it was given (the body of
// PUT /v1/artifacts/DIGEST, written as it arrives).
class ArtifactUpload {
 public:
  ~ArtifactUpload();  // removes the temp file unless it was committed
  // The next bytes; kTooLarge past the store's limit.
  Status Write(const char* data, size_t n);
  uint64_t size() const { return size_; }

 private:
  friend class ArtifactStore;
  ArtifactUpload(int fd, std::string path, uint64_t max_bytes);
  // Closes and removes the temp file now (not when the last reference goes, which may be
  // after the answer has reached the client).
  void Discard();

  int fd_;
  std::string path_;
  uint64_t max_bytes_;
  Sha256 sha_;
  uint64_t size_ = 0;
  bool finished_ = false;  // committed, or its temp file removed
};

class ArtifactStore {
 public:
  // Opens `dir` (creating it) and removes the temp files of uploads a crash interrupted.
  static Result<std::unique_ptr<ArtifactStore>> Open(const std::string& dir, uint64_t max_bytes);

  uint64_t max_bytes() const { return max_bytes_; }
  std::string PathOf(const std::string& digest) const;

  // The stored artifact, or nullopt.
  std::optional<ArtifactInfo> Stat(const std::string& digest) const;
  Result<std::vector<ArtifactInfo>> List() const;

  Result<std::unique_ptr<ArtifactUpload>> Begin();
  struct Committed {
    ArtifactInfo info;
    bool created = false;  // false: it was stored already, and is left as it was
  };
  // Checks that what `upload` received hashes to `digest` (kInvalidArgument naming both
  // otherwise, and nothing is kept), then makes it durable under that name.
  Result<Committed> Commit(ArtifactUpload& upload, const std::string& digest);

  // Notes that an artifact was just asked for (HEAD, GET, an apply that names it): garbage
  // collection spares it for a grace period from now.
  void Touch(const std::string& digest);
  // Deletes every artifact that `referenced` does not name and that nobody stored or asked for
  // in the last `grace`. An artifact this process has not seen asked for counts as asked for
  // when it is first looked at here (so a restart never shortens the grace). Returns what it
  // deleted.
  Result<std::vector<std::string>> CollectGarbage(const std::set<std::string>& referenced,
                                                  std::chrono::seconds grace);

 private:
  ArtifactStore(std::string dir, uint64_t max_bytes)
      : dir_(std::move(dir)), max_bytes_(max_bytes) {}

  std::string dir_;  // holds sha256/ (the artifacts) and tmp/ (uploads in progress)
  uint64_t max_bytes_;
  mutable std::mutex mu_;
  std::map<std::string, std::chrono::steady_clock::time_point> last_used_;
};

}  // namespace mentat
