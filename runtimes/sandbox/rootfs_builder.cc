#include "runtimes/sandbox/rootfs_builder.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <deque>
#include <map>

#include "runtimes/sandbox/elf_libraries.h"

namespace mentat {
namespace {

// Closes a file descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::deque<std::string> Components(const std::string& path) {
  std::deque<std::string> out;
  size_t start = 0;
  while (start < path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string ParentOf(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos || slash == 0 ? "" : path.substr(0, slash);
}

std::string BaseName(const std::string& path) { return path.substr(path.rfind('/') + 1); }

Result<std::string> ReadLink(const std::string& path) {
  char buf[PATH_MAX];
  ssize_t n = readlink(path.c_str(), buf, sizeof(buf));
  if (n < 0) return ErrnoError("readlink " + path, errno);
  return std::string(buf, n);
}

bool Excluded(const std::string& name, const std::string& rel,
              const std::vector<std::string>& exclude) {
  for (const auto& pattern : exclude) {
    bool by_path = pattern.find('/') != std::string::npos;
    if (fnmatch(pattern.c_str(), by_path ? rel.c_str() : name.c_str(),
                by_path ? FNM_PATHNAME : 0) == 0) {
      return true;
    }
  }
  return false;
}

// Whether a file might be ELF worth inspecting: executables and shared objects.
bool MaybeElf(const std::string& name, mode_t mode) {
  return (mode & 0111) != 0 || name.find(".so") != std::string::npos;
}

// A symlink `name` -> `target` in `dir_fd`; one already there with the same text is fine.
Status MakeLinkAt(int dir_fd, const std::string& name, const std::string& target,
                  const std::string& what) {
  if (symlinkat(target.c_str(), dir_fd, name.c_str()) == 0) return {};
  if (errno != EEXIST) return ErrnoError("symlink " + what, errno);
  char buf[PATH_MAX];
  ssize_t n = readlinkat(dir_fd, name.c_str(), buf, sizeof(buf));
  if (n >= 0 && std::string(buf, n) == target) return {};
  return FailedPrecondition(what + " already exists in the base as something else than a link to " +
                            target);
}

// A directory `name` in `dir_fd` with `mode` (exactly: not reduced by the umask).
Status MakeDirAt(int dir_fd, const std::string& name, mode_t mode, const std::string& what) {
  if (mkdirat(dir_fd, name.c_str(), 0700) == 0) {
    if (fchmodat(dir_fd, name.c_str(), mode, 0) < 0) return ErrnoError("chmod " + what, errno);
    return {};
  }
  if (errno != EEXIST) return ErrnoError("mkdir " + what, errno);
  struct stat st;
  if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
    return {};
  }
  return FailedPrecondition(what + " already exists in the base and is not a directory");
}

Status CopyFileAt(const std::string& host_path, const struct stat& st, int dir_fd,
                  const std::string& name) {
  Fd src(open(host_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (src.get() < 0) return ErrnoError("open " + host_path, errno);
  Fd dst(openat(dir_fd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (dst.get() < 0) return ErrnoError("create " + name + " for " + host_path, errno);
  bool plain_copy = false;
  for (off_t done = 0; done < st.st_size;) {
    ssize_t n = plain_copy ? -1
                           : copy_file_range(src.get(), nullptr, dst.get(), nullptr,
                                             static_cast<size_t>(st.st_size - done), 0);
    if (n < 0 && !plain_copy &&
        (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
      plain_copy = true;
    }
    if (plain_copy) {
      char buf[1 << 16];
      n = read(src.get(), buf, sizeof(buf));
      if (n > 0) {
        for (ssize_t w = 0; w < n;) {
          ssize_t k = write(dst.get(), buf + w, n - w);
          if (k < 0 && errno == EINTR) continue;
          if (k < 0) return ErrnoError("write " + name, errno);
          w += k;
        }
      }
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("copy " + host_path, errno);
    if (n == 0) break;  // the file shrank meanwhile
    done += n;
  }
  // Owner (when we may), mode and times as on the host: Python's bytecode caches compare the
  // source's mtime.
  if (geteuid() == 0) (void)!fchown(dst.get(), st.st_uid, st.st_gid);
  if (fchmod(dst.get(), st.st_mode & 07777) < 0) return ErrnoError("chmod " + name, errno);
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  futimens(dst.get(), times);
  return {};
}

}  // namespace

Result<std::unique_ptr<RootfsBuilder>> RootfsBuilder::Create(const std::string& root) {
  int fd = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open " + root, errno);
  return std::unique_ptr<RootfsBuilder>(new RootfsBuilder(root, fd));
}

RootfsBuilder::~RootfsBuilder() { close(root_fd_); }

Result<int> RootfsBuilder::OpenDir(const std::string& path, bool follow_links) const {
  size_t start = path.find_first_not_of('/');
  std::string rel = start == std::string::npos ? std::string(".") : path.substr(start);
  open_how how{};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS |
                (follow_links ? 0 : static_cast<uint64_t>(RESOLVE_NO_SYMLINKS));
  long fd = syscall(SYS_openat2, root_fd_, rel.c_str(), &how, sizeof(how));
  if (fd < 0) return ErrnoError("open " + path + " in the base", errno);
  return static_cast<int>(fd);
}

Status RootfsBuilder::Mirror(const std::string& host_path, bool whole_tree,
                             const std::vector<std::string>& exclude, const std::string& tree) {
  std::deque<std::string> todo = Components(host_path);
  // `cur` is the host path walked so far with every symlink resolved. The rootfs has a real
  // directory at the same path, so it is opened with RESOLVE_NO_SYMLINKS.
  std::string cur;
  int links = 0;
  while (!todo.empty()) {
    std::string c = todo.front();
    todo.pop_front();
    if (c == ".") continue;
    if (c == "..") {
      cur = ParentOf(cur);
      continue;
    }
    std::string h = cur + "/" + c;
    struct stat st;
    if (lstat(h.c_str(), &st) < 0) {
      if (errno == ENOENT || errno == ENOTDIR) {
        return NotFound(host_path + " does not exist on this host");
      }
      return ErrnoError("lstat " + h, errno);
    }
    MT_ASSIGN_OR_RETURN(int dir_raw, OpenDir(cur, /*follow_links=*/false));
    Fd dir(dir_raw);
    if (S_ISLNK(st.st_mode)) {
      if (++links > 40)
        return FailedPrecondition(host_path + ": too many levels of symbolic links");
      MT_ASSIGN_OR_RETURN(std::string target, ReadLink(h));
      MT_RETURN_IF_ERROR(MakeLinkAt(dir.get(), c, target, h));
      std::deque<std::string> parts = Components(target);
      todo.insert(todo.begin(), parts.begin(), parts.end());
      if (!target.empty() && target[0] == '/') cur.clear();
      continue;
    }
    bool last = todo.empty();
    if (S_ISDIR(st.st_mode)) {
      MT_RETURN_IF_ERROR(MakeDirAt(dir.get(), c, st.st_mode & 07777, h));
      cur = h;
      if (last && whole_tree && trees_done_.insert(h).second) {
        return CopyTree(h, "", exclude, tree.empty() ? h : tree);
      }
      continue;
    }
    if (!last) return FailedPrecondition(h + " is not a directory (in " + host_path + ")");
    if (S_ISREG(st.st_mode)) return LinkOrCopy(h, st, dir.get(), c, tree);
    return FailedPrecondition(h + " is not a regular file, a directory or a symlink");
  }
  return {};
}

Status RootfsBuilder::CopyTree(const std::string& host_dir, const std::string& rel,
                               const std::vector<std::string>& exclude, const std::string& tree) {
  DIR* d = opendir(host_dir.c_str());
  if (!d) return ErrnoError("opendir " + host_dir, errno);
  std::map<std::string, struct stat> entries;  // sorted: builds are reproducible
  for (dirent* e; (e = readdir(d)) != nullptr;) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (Excluded(name, rel.empty() ? name : rel + "/" + name, exclude)) continue;
    struct stat st;
    if (lstat((host_dir + "/" + name).c_str(), &st) == 0) entries[name] = st;
  }
  closedir(d);
  MT_ASSIGN_OR_RETURN(int dir_raw, OpenDir(host_dir, /*follow_links=*/false));
  Fd dir(dir_raw);
  std::vector<std::string> links_out;
  for (const auto& [name, st] : entries) {
    std::string h = host_dir + "/" + name;
    std::string r = rel.empty() ? name : rel + "/" + name;
    if (S_ISDIR(st.st_mode)) {
      MT_RETURN_IF_ERROR(MakeDirAt(dir.get(), name, st.st_mode & 07777, h));
      MT_RETURN_IF_ERROR(CopyTree(h, r, exclude, tree));
    } else if (S_ISREG(st.st_mode)) {
      MT_RETURN_IF_ERROR(LinkOrCopy(h, st, dir.get(), name, tree));
    } else if (S_ISLNK(st.st_mode)) {
      MT_ASSIGN_OR_RETURN(std::string target, ReadLink(h));
      MT_RETURN_IF_ERROR(MakeLinkAt(dir.get(), name, target, h));
      char resolved[PATH_MAX];
      // A link that leads out of the tree needs its target in the base too. A dangling one
      // stays dangling, as on the host.
      if (realpath(h.c_str(), resolved) != nullptr) {
        std::string res = resolved;
        if (res != tree && res.rfind(tree + "/", 0) != 0) links_out.push_back(h);
      }
    }
    // Sockets, FIFOs and devices have no place in a base.
  }
  for (const auto& h : links_out) {
    MT_RETURN_IF_ERROR(Mirror(h, /*whole_tree=*/true, {}, ""));
  }
  return {};
}

Status RootfsBuilder::LinkOrCopy(const std::string& host_path, const struct stat& st, int dir_fd,
                                 const std::string& name, const std::string& tree) {
  struct stat existing;
  if (fstatat(dir_fd, name.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0) return {};  // placed
  if (linkat(AT_FDCWD, host_path.c_str(), dir_fd, name.c_str(), 0) == 0) {
    ++stats_.linked;
  } else if (errno == EXDEV || errno == EPERM || errno == EMLINK || errno == EACCES) {
    MT_RETURN_IF_ERROR(CopyFileAt(host_path, st, dir_fd, name));
    ++stats_.copied;
  } else {
    return ErrnoError("link " + host_path, errno);
  }
  if (MaybeElf(name, st.st_mode)) {
    ElfInfo elf = InspectElf(host_path);
    if (elf.is_elf && elf.needs_libraries) elf_files_.push_back({host_path, elf.interpreter, tree});
  }
  return {};
}

Status RootfsBuilder::AddFile(const std::string& host_path) {
  return Mirror(host_path, /*whole_tree=*/false, {}, "");
}

Status RootfsBuilder::AddTree(const std::string& host_path,
                              const std::vector<std::string>& exclude) {
  char resolved[PATH_MAX];
  if (realpath(host_path.c_str(), resolved) == nullptr) {
    if (errno == ENOENT) return NotFound(host_path + " does not exist on this host");
    return ErrnoError("realpath " + host_path, errno);
  }
  return Mirror(host_path, /*whole_tree=*/true, exclude, resolved);
}

Status RootfsBuilder::AddSharedLibraries() {
  std::string default_loader = HostDynamicLoader();
  std::vector<ElfFile> files;
  files.swap(elf_files_);
  // Where each tree keeps its libraries: the search path for its libraries' siblings.
  std::map<std::string, std::vector<std::string>> tree_lib_dirs;
  for (const auto& f : files) {
    if (f.tree.empty() || f.host_path.find(".so") == std::string::npos) continue;
    auto& dirs = tree_lib_dirs[f.tree];
    std::string dir = ParentOf(f.host_path);
    if (std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) dirs.push_back(dir);
  }
  std::set<std::string> needed;
  for (const auto& f : files) {
    std::string loader = f.interpreter.empty() ? default_loader : f.interpreter;
    auto closure = ResolveLibraries(f.host_path, loader);
    if (!closure && !f.tree.empty()) {
      closure = ResolveLibraries(f.host_path, loader, tree_lib_dirs[f.tree]);
    }
    if (!closure) return std::unexpected(closure.error());
    needed.insert(closure->libraries.begin(), closure->libraries.end());
    needed.insert(closure->interpreter);
  }
  for (const auto& lib : needed) MT_RETURN_IF_ERROR(AddFile(lib));
  // The libraries' own libraries were in the closures already.
  elf_files_.clear();
  return {};
}

Status RootfsBuilder::MakeParents(const std::string& path) {
  std::string parent = ParentOf(path);
  if (parent.empty()) return {};
  // The host's way there (/bin -> usr/bin), creating only directories and links; a path the
  // host does not have becomes plain directories.
  auto mirrored = Mirror(parent, /*whole_tree=*/false, {}, "");
  if (mirrored || mirrored.error().code() != Code::kNotFound) return mirrored;
  return AddDirectory(parent, 0755);
}

Status RootfsBuilder::AddSymlink(const std::string& path, const std::string& target) {
  MT_RETURN_IF_ERROR(MakeParents(path));
  MT_ASSIGN_OR_RETURN(int dir_raw, OpenDir(ParentOf(path), /*follow_links=*/true));
  Fd dir(dir_raw);
  std::string name = BaseName(path);
  struct stat st;
  if (fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (!S_ISLNK(st.st_mode)) {
      return FailedPrecondition(path + " already exists in the base and is not a symlink");
    }
    if (unlinkat(dir.get(), name.c_str(), 0) < 0) return ErrnoError("unlink " + path, errno);
  }
  return MakeLinkAt(dir.get(), name, target, path);
}

Status RootfsBuilder::AddDirectory(const std::string& path, mode_t mode) {
  std::string walked;
  std::deque<std::string> parts = Components(path);
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string parent = walked;
    walked += "/" + parts[i];
    // Already there, maybe through a link (resolved inside the rootfs, like everything).
    if (auto existing = OpenDir(walked, /*follow_links=*/true)) {
      close(*existing);
      continue;
    }
    MT_ASSIGN_OR_RETURN(int dir_raw, OpenDir(parent, /*follow_links=*/true));
    Fd dir(dir_raw);
    MT_RETURN_IF_ERROR(MakeDirAt(dir.get(), parts[i], i + 1 == parts.size() ? mode : 0755, walked));
  }
  return {};
}

Status RootfsBuilder::WriteFile(const std::string& path, const std::string& content, mode_t mode) {
  MT_RETURN_IF_ERROR(AddDirectory(ParentOf(path), 0755));
  MT_ASSIGN_OR_RETURN(int dir_raw, OpenDir(ParentOf(path), /*follow_links=*/true));
  Fd dir(dir_raw);
  std::string name = BaseName(path);
  if (unlinkat(dir.get(), name.c_str(), 0) < 0 && errno != ENOENT) {
    return ErrnoError("unlink " + path, errno);
  }
  Fd f(openat(dir.get(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (f.get() < 0) return ErrnoError("create " + path, errno);
  for (size_t done = 0; done < content.size();) {
    ssize_t n = write(f.get(), content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("write " + path, errno);
    done += n;
  }
  if (fchmod(f.get(), mode) < 0) return ErrnoError("chmod " + path, errno);
  return {};
}

bool RootfsBuilder::Exists(const std::string& path) const {
  auto dir = OpenDir(ParentOf(path), /*follow_links=*/true);
  if (!dir) return false;
  Fd d(*dir);
  struct stat st;
  return fstatat(d.get(), BaseName(path).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

Result<int64_t> RootfsBuilder::SizeBytes() const {
  std::set<std::pair<dev_t, ino_t>> seen;
  int64_t total = 0;
  std::vector<std::string> dirs = {root_};
  while (!dirs.empty()) {
    std::string d = dirs.back();
    dirs.pop_back();
    DIR* dp = opendir(d.c_str());
    if (!dp) return ErrnoError("opendir " + d, errno);
    for (dirent* e; (e = readdir(dp)) != nullptr;) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      std::string p = d + "/" + name;
      struct stat st;
      if (lstat(p.c_str(), &st) < 0) continue;
      if (S_ISDIR(st.st_mode)) {
        dirs.push_back(p);
      } else if (S_ISREG(st.st_mode) && seen.insert({st.st_dev, st.st_ino}).second) {
        total += st.st_size;
      }
    }
    closedir(dp);
  }
  return total;
}

}  // namespace mentat
