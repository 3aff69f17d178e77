#include "apis/artifacts/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <memory>
#include <thread>

#include "apis/artifacts/rootfs_entries.h"
#include "apis/service.h"

namespace mentat {
namespace fs = std::filesystem;
namespace {

using ArchivePtr = std::unique_ptr<struct archive, int (*)(struct archive*)>;

bool ClimbsOut(const std::string& path) {
  return path.empty() || path[0] == '/' || HasDotDot(path);
}

std::string Size(uint64_t bytes) {
  return bytes >= (uint64_t{1} << 20) ? std::to_string(bytes >> 20) + " MiB"
                                      : std::to_string(bytes >> 10) + " KiB";
}

uint64_t DeclaredSize(archive_entry* e) {
  return static_cast<uint64_t>(std::max<la_int64_t>(archive_entry_size(e), 0));
}

// One archive read from `fd` and written into the current directory (the extraction thread's
// own, see UnpackArchive), entry by entry, each checked before anything of it is written.
class Extraction {
 public:
  Extraction(int fd, uint64_t archive_size, const UnpackLimits& limits,
             const UnpackReserve& reserve)
      : fd_(fd), archive_size_(archive_size), limits_(limits), reserve_(reserve) {}

  Result<UnpackedSize> Run() {
    MT_RETURN_IF_ERROR(Open());
    for (;;) {
      archive_entry* e = nullptr;
      int r = archive_read_next_header(in_.get(), &e);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) {
        return InvalidArgument(std::string("reading the archive: ") +
                               archive_error_string(in_.get()));
      }
      MT_RETURN_IF_ERROR(WriteEntry(e));
    }
    // Directory permissions are set last, once nothing more is written into them.
    if (archive_write_close(out_.get()) < ARCHIVE_WARN) {
      return Internal(std::string("finishing the tree: ") + archive_error_string(out_.get()));
    }
    return size_;
  }

 private:
  Status Open() {
    archive_read_support_filter_all(in_.get());
    archive_read_support_format_tar(in_.get());
    if (archive_read_open_fd(in_.get(), fd_, 1 << 16) != ARCHIVE_OK) {
      return InvalidArgument(std::string("not a tar archive: ") + archive_error_string(in_.get()));
    }
    // No ARCHIVE_EXTRACT_OWNER: everything belongs to the agent's user. The SECURE flags
    // refuse "..", absolute paths and writes through symlinks; NO_OVERWRITE refuses a second
    // entry of the same name.
    archive_write_disk_set_options(
        out_.get(), ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                        ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS |
                        ARCHIVE_EXTRACT_NO_OVERWRITE);
    return {};
  }

  Status WriteEntry(archive_entry* e) {
    const char* raw = archive_entry_pathname(e);
    std::string name = raw ? raw : "";
    std::string quoted = "\"" + name.substr(0, 200) + "\"";
    mode_t type = archive_entry_filetype(e);
    MT_RETURN_IF_ERROR(CheckShape(e, type, name, quoted));
    uint64_t bytes = type == AE_IFREG ? DeclaredSize(e) : 0;
    MT_RETURN_IF_ERROR(CheckLimits(bytes));
    if (reserve_) MT_RETURN_IF_ERROR(reserve_(bytes, 1));
    archive_entry_set_perm(e, archive_entry_perm(e) & 0777);  // no setuid, setgid or sticky
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    if (archive_write_header(out_.get(), e) < ARCHIVE_WARN) {
      return InvalidArgument("entry " + quoted + " refused: " + archive_error_string(out_.get()));
    }
    if (type == AE_IFREG) MT_RETURN_IF_ERROR(CopyData(bytes, quoted));
    if (archive_write_finish_entry(out_.get()) < ARCHIVE_WARN) {
      return Internal("writing " + quoted + ": " + archive_error_string(out_.get()));
    }
    return {};
  }

  // What an app rootfs may hold at all.
  static Status CheckShape(archive_entry* e, mode_t type, const std::string& name,
                           const std::string& quoted) {
    // The SECURE flags would refuse these too; saying so here names the reason plainly.
    if (ClimbsOut(name)) {
      return InvalidArgument("entry " + quoted + " is absolute or climbs out with \"..\"");
    }
    if (archive_entry_hardlink(e)) return InvalidArgument("entry " + quoted + " is a hard link");
    if (!IsRootfsEntryType(type)) return NotARootfsEntry("entry " + quoted, type);
    return {};
  }

  // Counts the entry about to be written (`bytes` of file data) against the limits.
  Status CheckLimits(uint64_t bytes) {
    size_.entries++;
    size_.bytes += bytes;
    if (size_.entries > limits_.max_entries) {
      return InvalidArgument("it holds more than " + std::to_string(limits_.max_entries) +
                             " entries, the limit per artifact (" + kUnpackMaxEntriesFlag + ")");
    }
    if (size_.bytes > limits_.max_bytes) {
      return InvalidArgument("its files would take more than " + Size(limits_.max_bytes) +
                             ", the limit per artifact (" + kUnpackMaxMbFlag + ")");
    }
    // The tar stream decompressed so far counts too: headers can be inflated as well as data.
    uint64_t stream =
        static_cast<uint64_t>(std::max<la_int64_t>(archive_filter_bytes(in_.get(), 0), 0));
    return CheckRatio(std::max(size_.bytes, stream));
  }

  Status CheckRatio(uint64_t unpacked) const {
    if (limits_.max_ratio == 0 || unpacked <= limits_.ratio_floor) return {};
    if (unpacked / limits_.max_ratio <= archive_size_) return {};
    return InvalidArgument("it unpacks to more than " + Size(unpacked) + " from an archive of " +
                           Size(archive_size_) + ", more than " +
                           std::to_string(limits_.max_ratio) +
                           " times its size (a decompression bomb?; " + kUnpackMaxRatioFlag + ")");
  }

  Status CopyData(uint64_t declared, const std::string& quoted) {
    uint64_t written = 0;
    for (;;) {
      const void* buf = nullptr;
      size_t n = 0;
      la_int64_t off = 0;
      int r = archive_read_data_block(in_.get(), &buf, &n, &off);
      if (r == ARCHIVE_EOF) return {};
      if (r < ARCHIVE_WARN) {
        return InvalidArgument("reading " + quoted + ": " + archive_error_string(in_.get()));
      }
      written += n;
      if (written > declared) {
        return InvalidArgument("entry " + quoted + " holds more than its declared size");
      }
      if (archive_write_data_block(out_.get(), buf, n, off) < ARCHIVE_WARN) {
        return Internal("writing " + quoted + ": " + archive_error_string(out_.get()));
      }
    }
  }

  int fd_;
  uint64_t archive_size_;
  const UnpackLimits& limits_;
  const UnpackReserve& reserve_;
  ArchivePtr in_{archive_read_new(), archive_read_free};
  ArchivePtr out_{archive_write_disk_new(), archive_write_free};
  UnpackedSize size_;
};

}  // namespace

Result<UnpackedSize> UnpackArchive(const std::string& archive, const std::string& dest,
                                   const UnpackLimits& limits, const UnpackReserve& reserve) {
  int fd = ::open(archive.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("opening " + archive, errno);
  struct stat st {};
  uint64_t archive_size = ::fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  // libarchive's SECURE_* checks work on paths relative to the current directory, which is
  // the process's. So the extraction runs on a thread of its own that first unshares its
  // filesystem context (CLONE_FS) and then changes into `dest`: no other thread moves.
  Result<UnpackedSize> result = UnpackedSize{};
  std::thread worker([&] {
    if (::unshare(CLONE_FS) != 0) {
      result = ErrnoError("unshare(CLONE_FS)", errno);
      return;
    }
    if (::chdir(dest.c_str()) != 0) {
      result = ErrnoError("entering " + dest, errno);
      return;
    }
    result = Extraction(fd, archive_size, limits, reserve).Run();
  });
  worker.join();
  ::close(fd);
  return result;
}

Status RemoveTree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (!ec) return {};
  // A directory without u+wx keeps its entries: open every directory up and try again.
  if (fs::is_directory(fs::symlink_status(path, ec))) {
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
    for (auto it = fs::recursive_directory_iterator(path, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) {
        fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
      }
      ec.clear();
    }
  }
  ec.clear();
  fs::remove_all(path, ec);
  if (ec) return Internal("removing " + path + ": " + ec.message());
  return {};
}

Result<UnpackedSize> MeasureTree(const std::string& path) {
  UnpackedSize size;
  std::error_code ec;
  fs::recursive_directory_iterator it(path, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    size.entries++;
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      size.bytes += static_cast<uint64_t>(st.st_size);
    }
  }
  if (ec) return Internal("measuring " + path + ": " + ec.message());
  return size;
}

}  // namespace mentat
