#include "runtimes/agent/artifacts.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include "apis/service.h"
#include "apis/sha256.h"

namespace mentat {
namespace fs = std::filesystem;
namespace {

bool ClimbsOut(const std::string& path) {
  return path.empty() || path[0] == '/' || HasDotDot(path);
}

const char* TypeName(mode_t type) {
  switch (type) {
    case AE_IFCHR:
      return "a character device";
    case AE_IFBLK:
      return "a block device";
    case AE_IFIFO:
      return "a FIFO";
    case AE_IFSOCK:
      return "a socket";
    default:
      return "of an unknown type";
  }
}

// Extracts from `in` into the current directory (the caller's own, see UnpackArchive).
Status Extract(int fd, uint64_t max_bytes, uint64_t max_entries) {
  std::unique_ptr<struct archive, int (*)(struct archive*)> in(archive_read_new(),
                                                               archive_read_free);
  archive_read_support_filter_all(in.get());
  archive_read_support_format_tar(in.get());
  if (archive_read_open_fd(in.get(), fd, 1 << 16) != ARCHIVE_OK) {
    return InvalidArgument(std::string("not a tar archive: ") + archive_error_string(in.get()));
  }
  std::unique_ptr<struct archive, int (*)(struct archive*)> out(archive_write_disk_new(),
                                                                archive_write_free);
  // No ARCHIVE_EXTRACT_OWNER: everything belongs to the agent's user. The SECURE flags refuse
  // "..", absolute paths and writes through symlinks; NO_OVERWRITE refuses a second entry of
  // the same name.
  archive_write_disk_set_options(out.get(), ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                                ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                                ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS |
                                                ARCHIVE_EXTRACT_NO_OVERWRITE);
  uint64_t bytes = 0, entries = 0;
  for (;;) {
    archive_entry* e = nullptr;
    int r = archive_read_next_header(in.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      return InvalidArgument(std::string("reading the archive: ") + archive_error_string(in.get()));
    }
    const char* raw = archive_entry_pathname(e);
    std::string name = raw ? raw : "";
    std::string quoted = "\"" + name.substr(0, 200) + "\"";
    if (++entries > max_entries) {
      return InvalidArgument("more than " + std::to_string(max_entries) + " entries");
    }
    // The SECURE flags would refuse these too; saying so here names the reason plainly.
    if (ClimbsOut(name)) {
      return InvalidArgument("entry " + quoted + " is absolute or climbs out with \"..\"");
    }
    if (archive_entry_hardlink(e)) {
      return InvalidArgument("entry " + quoted + " is a hard link");
    }
    mode_t type = archive_entry_filetype(e);
    if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
      return InvalidArgument("entry " + quoted + " is " + TypeName(type) +
                             ": an app rootfs holds only files, directories and symlinks");
    }
    if (type == AE_IFREG) {
      bytes += static_cast<uint64_t>(std::max<la_int64_t>(archive_entry_size(e), 0));
      if (bytes > max_bytes) {
        return InvalidArgument("it unpacks to more than " + std::to_string(max_bytes >> 20) +
                               " MiB");
      }
    }
    archive_entry_set_perm(e, archive_entry_perm(e) & 0777);  // no setuid, setgid or sticky
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    if (archive_write_header(out.get(), e) < ARCHIVE_WARN) {
      return InvalidArgument("entry " + quoted + " refused: " + archive_error_string(out.get()));
    }
    if (type == AE_IFREG) {
      uint64_t written = 0;
      for (;;) {
        const void* buf = nullptr;
        size_t n = 0;
        la_int64_t off = 0;
        int rr = archive_read_data_block(in.get(), &buf, &n, &off);
        if (rr == ARCHIVE_EOF) break;
        if (rr < ARCHIVE_WARN) {
          return InvalidArgument("reading " + quoted + ": " + archive_error_string(in.get()));
        }
        written += n;
        if (written > static_cast<uint64_t>(std::max<la_int64_t>(archive_entry_size(e), 0))) {
          return InvalidArgument("entry " + quoted + " holds more than its declared size");
        }
        if (archive_write_data_block(out.get(), buf, n, off) < ARCHIVE_WARN) {
          return Internal("writing " + quoted + ": " + archive_error_string(out.get()));
        }
      }
    }
    if (archive_write_finish_entry(out.get()) < ARCHIVE_WARN) {
      return Internal("writing " + quoted + ": " + archive_error_string(out.get()));
    }
  }
  // Directory permissions are set last, once nothing more is written into them.
  if (archive_write_close(out.get()) < ARCHIVE_WARN) {
    return Internal(std::string("finishing the tree: ") + archive_error_string(out.get()));
  }
  return {};
}

}  // namespace

Status UnpackArchive(const std::string& archive, const std::string& dest, uint64_t max_bytes,
                     uint64_t max_entries) {
  int fd = ::open(archive.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("opening " + archive, errno);
  // libarchive's SECURE_* checks work on paths relative to the current directory, which is
  // the process's. So the extraction runs on a thread of its own that first unshares its
  // filesystem context (CLONE_FS) and then changes into `dest`: no other thread moves.
  Status result;
  std::thread worker([&] {
    if (::unshare(CLONE_FS) != 0) {
      result = ErrnoError("unshare(CLONE_FS)", errno);
      return;
    }
    if (::chdir(dest.c_str()) != 0) {
      result = ErrnoError("entering " + dest, errno);
      return;
    }
    result = Extract(fd, max_bytes, max_entries);
  });
  worker.join();
  ::close(fd);
  return result;
}

ArtifactCache::ArtifactCache(std::string dir, std::shared_ptr<ApiClient> client)
    : dir_(std::move(dir)), client_(std::move(client)) {
  std::error_code ec;
  dir_ = fs::absolute(dir_, ec).lexically_normal().string();
  fs::remove_all(dir_ + "/tmp", ec);  // a fetch a crash interrupted
  fs::create_directories(dir_ + "/tmp", ec);
  fs::create_directories(dir_ + "/sha256", ec);
}

uint64_t ArtifactCache::fetches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fetches_;
}

Result<std::string> ArtifactCache::Ensure(const std::string& digest) {
  if (!IsArtifactDigest(digest)) {
    return InvalidArgument("\"" + digest + "\" is not an artifact digest");
  }
  std::string path = dir_ + "/sha256/" + digest.substr(sizeof(kArtifactDigestPrefix) - 1);
  std::promise<Result<std::string>> promise;
  std::shared_future<Result<std::string>> shared;
  {
    std::lock_guard<std::mutex> lock(mu_);
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return path;
    auto it = in_flight_.find(digest);
    if (it != in_flight_.end()) {
      shared = it->second;
    } else {
      in_flight_[digest] = promise.get_future().share();
      ++fetches_;
    }
  }
  if (shared.valid()) return shared.get();  // another caller fetches it: wait for that one
  Result<std::string> result = Fetch(digest);
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_.erase(digest);
  }
  promise.set_value(result);
  return result;
}

Result<std::string> ArtifactCache::Fetch(const std::string& digest) {
  std::string hex = digest.substr(sizeof(kArtifactDigestPrefix) - 1);
  std::string final_path = dir_ + "/sha256/" + hex;
  std::string work = dir_ + "/tmp/" + hex + "-XXXXXX";
  if (!::mkdtemp(work.data())) return ErrnoError("creating " + work, errno);
  struct Cleanup {
    std::string path;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } cleanup{work};
  std::string download = work + "/archive";
  std::string tree = work + "/tree";
  if (::mkdir(tree.c_str(), 0755) != 0) return ErrnoError("creating " + tree, errno);

  // Download, hashing as it arrives.
  int fd = ::open(download.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("creating " + download, errno);
  Sha256 sha;
  uint64_t received = 0;
  int write_error = 0;
  auto got = client_->GetArtifact(digest, [&](const char* data, size_t n) {
    size_t off = 0;
    while (off < n) {
      ssize_t w = ::write(fd, data + off, n - off);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        write_error = errno;
        return false;
      }
      off += static_cast<size_t>(w);
    }
    sha.Update(data, n);
    received += n;
    return true;
  });
  ::close(fd);
  if (write_error) return ErrnoError("writing " + download, write_error);
  if (!got) {
    return std::unexpected(Error(got.error().code(), "downloading it: " + got.error().message()));
  }
  std::string sum = sha.Finish();
  if (sum != digest) {
    return MakeError(Code::kUnavailable, "the server sent " + std::to_string(received) +
                                             " bytes that hash to " + sum + ", not to the digest");
  }

  // A layer: the app's files under /app, where the sandbox shows them (seed 000: `rootfs:
  // ./.next/standalone` runs as /app/start.sh), over the base's root.
  const std::string app = tree + "/app";
  if (::mkdir(app.c_str(), 0755) != 0) return ErrnoError("creating " + app, errno);
  MT_RETURN_IF_ERROR(UnpackArchive(download, app));
  // The tree is whole on disk before it gets its name: a crash leaves no half tree behind it.
  int tfd = ::open(tree.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (tfd >= 0) {
    ::syncfs(tfd);
    ::close(tfd);
  }
  ::chmod(tree.c_str(), 0755);
  if (::rename(tree.c_str(), final_path.c_str()) != 0) {
    // Another agent process on this data dir (there should be none) got there first.
    if (errno != ENOTEMPTY && errno != EEXIST) return ErrnoError("storing " + final_path, errno);
  }
  // The name itself is not fsynced: if a crash loses it, the tree is under tmp/, which the
  // next start empties, and the artifact is fetched again.
  spdlog::info("agent: artifact {} fetched ({} bytes) and unpacked in {}", digest, received,
               final_path);
  return final_path;
}

Status ResolveRootfs(ArtifactCache& cache, Json& spec) {
  if (!spec.is_object() || !spec.contains("rootfs") || !spec["rootfs"].is_string()) return {};
  std::string rootfs = spec["rootfs"].get<std::string>();
  if (rootfs.rfind(kArtifactDigestPrefix, 0) != 0) return {};
  auto dir = cache.Ensure(rootfs);
  if (!dir) {
    return std::unexpected(
        Error(dir.error().code(), "cannot fetch rootfs " + rootfs + ": " + dir.error().message()));
  }
  spec["rootfs"] = *dir;
  spec["rootfsIsApp"] = true;  // the tree sits at /app in its layer
  return {};
}

}  // namespace mentat
