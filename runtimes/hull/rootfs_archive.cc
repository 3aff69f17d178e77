#include "runtimes/hull/rootfs_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <memory>

namespace mentat::hull {
namespace fs = std::filesystem;
namespace {

// An entry path is safe when relative and free of ".." components.
bool SafeRelative(const std::string& p) {
  if (p.empty() || p[0] == '/') return false;
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string::npos) end = p.size();
    if (p.compare(start, end - start, "..") == 0 && end - start == 2) return false;
    start = end + 1;
  }
  return true;
}

}  // namespace

Status ExtractRootfsArchive(const std::string& archive, const std::string& dest_path) {
  std::unique_ptr<struct archive, int (*)(struct archive*)> in(archive_read_new(), archive_read_free);
  std::unique_ptr<struct archive, int (*)(struct archive*)> out(archive_write_disk_new(),
                                                                archive_write_free);
  // gzip only: the manifest takes nothing but .tar.gz, and each other filter (xz, zstd, lz4,
  // bzip2) would link its library into the static hull (~370 KB of the 3 MB budget).
  archive_read_support_filter_gzip(in.get());
  archive_read_support_format_tar(in.get());
  archive_read_support_format_gnutar(in.get());
  // Ownership and permissions are kept (setuid/setgid stripped below); the SECURE flags are a
  // second line behind the checks here: no "..", nothing written through a symlink. (Entries are
  // written by absolute path under `dest`, hence no SECURE_NOABSOLUTEPATHS: the check below
  // refuses absolute entry names instead.)
  archive_write_disk_set_options(out.get(), ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM |
                                                ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                                ARCHIVE_EXTRACT_SECURE_SYMLINKS);
  // Owners stay numeric, as in an OCI image: the host's /etc/passwd says nothing about the
  // rootfs's users (and the name lookup would link glibc's NSS into the static hull).
  if (archive_read_open_filename(in.get(), archive.c_str(), 1 << 16) != ARCHIVE_OK) {
    return InvalidArgument("rootfs: " + archive + ": " + archive_error_string(in.get()));
  }
  std::error_code ec;
  fs::create_directories(dest_path, ec);
  if (ec) return Internal("rootfs: creating " + dest_path + ": " + ec.message());
  // Symlinks above it would trip SECURE_SYMLINKS: the real path.
  const std::string dest = fs::canonical(dest_path, ec).string();
  auto fail = [&](Error e) -> Status {
    fs::remove_all(dest, ec);
    return std::unexpected(std::move(e));
  };
  archive_entry* entry = nullptr;
  for (;;) {
    int rc = archive_read_next_header(in.get(), &entry);
    if (rc == ARCHIVE_EOF) break;
    if (rc < ARCHIVE_WARN) {
      return fail(Error(Code::kInvalidArgument, "rootfs: " + archive + ": " + archive_error_string(in.get())));
    }
    std::string name = archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "";
    while (name.rfind("./", 0) == 0) name.erase(0, 2);
    if (name.empty() || name == ".") continue;  // the root itself
    if (!SafeRelative(name)) {
      return fail(Error(Code::kInvalidArgument, "rootfs: " + archive + ": entry \"" +
                                                    std::string(archive_entry_pathname(entry)) +
                                                    "\" leaves the root (absolute or \"..\"); refused"));
    }
    if (const char* link = archive_entry_hardlink(entry)) {
      std::string target = link;
      while (target.rfind("./", 0) == 0) target.erase(0, 2);
      if (!SafeRelative(target)) {
        return fail(Error(Code::kInvalidArgument, "rootfs: " + archive + ": hard link \"" + name +
                                                      "\" points outside the root; refused"));
      }
      archive_entry_set_hardlink(entry, (dest + "/" + target).c_str());
    }
    const mode_t type = archive_entry_filetype(entry);
    if (type == AE_IFCHR || type == AE_IFBLK || type == AE_IFSOCK) continue;  // no device nodes
    archive_entry_set_perm(entry, archive_entry_perm(entry) & ~static_cast<mode_t>(S_ISUID | S_ISGID));
    archive_entry_set_pathname(entry, (dest + "/" + name).c_str());
    rc = archive_write_header(out.get(), entry);
    if (rc < ARCHIVE_WARN) {
      return fail(Error(Code::kInvalidArgument,
                        "rootfs: " + archive + ": " + name + ": " + archive_error_string(out.get())));
    }
    if (archive_entry_size(entry) > 0 && type == AE_IFREG) {
      const void* buf;
      size_t size;
      la_int64_t offset;
      while ((rc = archive_read_data_block(in.get(), &buf, &size, &offset)) == ARCHIVE_OK) {
        if (archive_write_data_block(out.get(), buf, size, offset) < ARCHIVE_WARN) {
          return fail(Error(Code::kInternal, "rootfs: writing " + name + ": " + archive_error_string(out.get())));
        }
      }
      if (rc < ARCHIVE_WARN) {
        return fail(Error(Code::kInvalidArgument, "rootfs: " + archive + ": " + archive_error_string(in.get())));
      }
    }
    if (archive_write_finish_entry(out.get()) < ARCHIVE_WARN) {
      return fail(Error(Code::kInternal, "rootfs: " + name + ": " + archive_error_string(out.get())));
    }
  }
  if (archive_write_close(out.get()) != ARCHIVE_OK) {
    return fail(Error(Code::kInternal, "rootfs: finishing " + dest + ": " + archive_error_string(out.get())));
  }
  return {};
}

Result<std::string> CachedRootfs(const std::string& archive, const std::string& cache_dir) {
  struct stat st;
  if (::stat(archive.c_str(), &st) != 0) return ErrnoError("rootfs: " + archive, errno);
  std::error_code ec;
  std::string canon = fs::canonical(archive, ec).string();
  // FNV-1a over what identifies this version of the file.
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const void* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<const unsigned char*>(p)[i]) * 1099511628211ull;
  };
  mix(canon.data(), canon.size());
  for (uint64_t v : {static_cast<uint64_t>(st.st_size), static_cast<uint64_t>(st.st_mtim.tv_sec),
                     static_cast<uint64_t>(st.st_mtim.tv_nsec), static_cast<uint64_t>(st.st_ino)}) {
    mix(&v, sizeof(v));
  }
  char key[17];
  std::snprintf(key, sizeof(key), "%016llx", static_cast<unsigned long long>(h));
  const std::string dir = cache_dir + "/" + key;
  fs::create_directories(cache_dir, ec);
  if (ec) return Internal("rootfs cache " + cache_dir + ": " + ec.message());
  int lock = ::open((dir + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock < 0) return ErrnoError("rootfs cache lock", errno);
  while (::flock(lock, LOCK_EX) != 0 && errno == EINTR) {
  }
  Status st_extract;
  if (!fs::is_directory(dir)) {
    const std::string tmp = dir + ".tmp-" + std::to_string(::getpid());
    fs::remove_all(tmp, ec);
    st_extract = ExtractRootfsArchive(archive, tmp);
    if (st_extract && ::rename(tmp.c_str(), dir.c_str()) != 0) {
      st_extract = ErrnoError("rootfs cache: renaming " + tmp, errno);
      fs::remove_all(tmp, ec);
    }
  }
  ::close(lock);
  if (!st_extract) return std::unexpected(st_extract.error());
  return dir;
}

}  // namespace mentat::hull
