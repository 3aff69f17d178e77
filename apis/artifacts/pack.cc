#include "apis/artifacts/pack.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "apis/artifacts/rootfs_entries.h"
#include "apis/sha256.h"

namespace mentat {
namespace {

// Where libarchive's output goes: the archive file, hashed on the way.
struct Output {
  int fd = -1;
  Sha256 sha;
  uint64_t bytes = 0;
  int error = 0;
};

la_ssize_t WriteOut(struct archive*, void* arg, const void* data, size_t n) {
  auto* out = static_cast<Output*>(arg);
  const char* p = static_cast<const char*>(data);
  size_t off = 0;
  while (off < n) {
    ssize_t w = ::write(out->fd, p + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      out->error = errno;
      return -1;
    }
    off += static_cast<size_t>(w);
  }
  out->sha.Update(data, n);
  out->bytes += n;
  return static_cast<la_ssize_t>(n);
}

class Packer {
 public:
  Packer(std::string root, struct archive* a) : root_(std::move(root)), a_(a) {}

  // Packs the entries under root_/rel (rel "" for the root itself), sorted by name.
  Status Directory(const std::string& rel) {
    std::string path = rel.empty() ? root_ : root_ + "/" + rel;
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(path.c_str()), ::closedir);
    if (!d) return ErrnoError("reading " + path, errno);
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d.get())) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(std::move(n));
    }
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      std::string child = rel.empty() ? n : rel + "/" + n;
      MT_RETURN_IF_ERROR(Entry(child));
    }
    return {};
  }

  uint64_t entries() const { return entries_; }

 private:
  Status Entry(const std::string& rel) {
    std::string path = root_ + "/" + rel;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return ErrnoError(path, errno);
    std::unique_ptr<archive_entry, void (*)(archive_entry*)> e(archive_entry_new(),
                                                               archive_entry_free);
    archive_entry_set_pathname(e.get(), rel.c_str());
    archive_entry_set_uid(e.get(), 0);
    archive_entry_set_gid(e.get(), 0);
    archive_entry_set_mtime(e.get(), 0, 0);
    archive_entry_set_perm(e.get(), st.st_mode & 0777);
    int fd = -1;
    if (S_ISDIR(st.st_mode)) {
      archive_entry_set_filetype(e.get(), AE_IFDIR);
    } else if (S_ISLNK(st.st_mode)) {
      std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
      ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
      if (n < 0) return ErrnoError("reading the link " + path, errno);
      target.resize(static_cast<size_t>(n));
      archive_entry_set_filetype(e.get(), AE_IFLNK);
      archive_entry_set_perm(e.get(), 0777);
      archive_entry_set_symlink(e.get(), target.c_str());
    } else if (S_ISREG(st.st_mode)) {
      fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0) return ErrnoError("opening " + path, errno);
      archive_entry_set_filetype(e.get(), AE_IFREG);
      archive_entry_set_size(e.get(), st.st_size);
    } else {
      return NotARootfsEntry(path, st.st_mode);
    }
    std::unique_ptr<int, void (*)(int*)> closer(&fd, [](int* f) {
      if (*f >= 0) ::close(*f);
    });
    if (archive_write_header(a_, e.get()) != ARCHIVE_OK) {
      return Internal("packing " + path + ": " + archive_error_string(a_));
    }
    ++entries_;
    if (fd >= 0) {
      char buf[1 << 16];
      uint64_t total = 0;
      for (;;) {
        ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ErrnoError("reading " + path, errno);
        if (n == 0) break;
        total += static_cast<uint64_t>(n);
        if (total > static_cast<uint64_t>(st.st_size)) break;
        if (archive_write_data(a_, buf, static_cast<size_t>(n)) < 0) {
          return Internal("packing " + path + ": " + archive_error_string(a_));
        }
      }
      if (total != static_cast<uint64_t>(st.st_size)) {
        return FailedPrecondition(path + " changed while it was packed; pack it again");
      }
    }
    if (S_ISDIR(st.st_mode)) MT_RETURN_IF_ERROR(Directory(rel));
    return {};
  }

  std::string root_;
  struct archive* a_;
  uint64_t entries_ = 0;
};

}  // namespace

Result<PackedTree> PackDirectory(const std::string& dir, const std::string& archive_path) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return ErrnoError(dir, errno);
  if (!S_ISDIR(st.st_mode)) return InvalidArgument(dir + " is not a directory");

  Output out;
  out.fd = ::open(archive_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out.fd < 0) return ErrnoError("creating " + archive_path, errno);
  std::unique_ptr<Output, void (*)(Output*)> cleanup(&out, [](Output* o) { ::close(o->fd); });

  std::unique_ptr<struct archive, int (*)(struct archive*)> a(archive_write_new(),
                                                              archive_write_free);
  // zstd when libarchive has it built in (not through an external program, whose output
  // could differ between machines); gzip without a timestamp otherwise. Both single-threaded,
  // so their output depends only on their input.
  if (archive_write_add_filter_zstd(a.get()) != ARCHIVE_OK) {
    a.reset(archive_write_new());
    if (archive_write_add_filter_gzip(a.get()) != ARCHIVE_OK ||
        archive_write_set_filter_option(a.get(), "gzip", "timestamp", nullptr) != ARCHIVE_OK) {
      return Internal(std::string("libarchive cannot compress: ") + archive_error_string(a.get()));
    }
  }
  // pax only where ustar cannot say it (long names): no times, owners or inodes beyond those
  // set on each entry.
  archive_write_set_format_pax_restricted(a.get());
  archive_write_set_bytes_in_last_block(a.get(), 1);
  if (archive_write_open(a.get(), &out, nullptr, &WriteOut, nullptr) != ARCHIVE_OK) {
    return Internal(std::string("packing: ") + archive_error_string(a.get()));
  }
  Packer packer(dir, a.get());
  auto packed = packer.Directory("");
  if (!packed) return std::unexpected(packed.error());
  if (archive_write_close(a.get()) != ARCHIVE_OK) {
    if (out.error) return ErrnoError("writing " + archive_path, out.error);
    return Internal(std::string("packing: ") + archive_error_string(a.get()));
  }

  PackedTree result;
  result.digest = out.sha.Finish();
  result.bytes = out.bytes;
  result.entries = packer.entries();
  return result;
}

}  // namespace mentat
