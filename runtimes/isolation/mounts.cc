#include "runtimes/isolation/mounts.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

namespace mentat {
namespace {

constexpr const char* kDevices[] = {"/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"};
constexpr size_t kDeviceCount = sizeof(kDevices) / sizeof(kDevices[0]);
// Each device's mount point as OpenMountPoint walks it (built at start-up, read in the child).
const std::vector<std::string> kDeviceWalks[kDeviceCount] = {
    {"/dev", "/dev/null"}, {"/dev", "/dev/zero"}, {"/dev", "/dev/random"}, {"/dev", "/dev/urandom"}};

// Characters the overlay option string cannot carry.
bool OverlaySafe(const std::string& p) { return p.find_first_of(",:\\\n") == std::string::npos; }

int Mkdir(const char* path, mode_t mode) noexcept {
  if (::mkdir(path, mode) == 0 || errno == EEXIST) return 0;
  return errno;
}

// Read-only bind of `path` over itself. Missing paths are skipped.
int ReadOnly(const char* path) noexcept {
  if (::mount(path, path, nullptr, MS_BIND | MS_REC, nullptr) != 0) return errno == ENOENT ? 0 : errno;
  if (::mount(nullptr, path, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              nullptr) != 0) {
    return errno;
  }
  return 0;
}

// Hides a file behind /dev/null. Missing paths are skipped.
int Mask(const char* path) noexcept {
  if (::mount("/dev/null", path, nullptr, MS_BIND, nullptr) != 0) return errno == ENOENT ? 0 : errno;
  return 0;
}

}  // namespace

Status PlanRoot(RootPlan& plan) {
  namespace fs = std::filesystem;
  if (plan.lower.empty()) return InvalidArgument("sandbox: no root filesystem: give base, rootfs or both");
  std::string lowerdir;
  for (const auto& l : plan.lower) {
    std::error_code ec;
    if (l.empty() || l[0] != '/' || !fs::is_directory(l, ec)) {
      return InvalidArgument("sandbox: rootfs " + l + " is not a directory on this node");
    }
    if (!OverlaySafe(l)) return InvalidArgument("sandbox: rootfs " + l + " has a character overlayfs cannot take (, : \\)");
    if (!lowerdir.empty()) lowerdir += ":";
    lowerdir += l;
  }
  if (plan.bind_root) {
    if (plan.lower.size() != 1) return InvalidArgument("rootfs: a bound root is one directory");
    std::error_code ec;
    plan.merged = fs::canonical(plan.lower[0], ec).string();
    if (ec) return InvalidArgument("rootfs: " + plan.lower[0] + ": " + ec.message());
    if (plan.merged == "/") return InvalidArgument("rootfs: the host's / cannot be a container's root");
  }
  for (auto* d : {&plan.upper, &plan.work, &plan.merged}) {
    if (plan.bind_root) break;
    if (!OverlaySafe(*d)) return InvalidArgument("sandbox: task directory " + *d + " has a character overlayfs cannot take");
    std::error_code ec;
    fs::create_directories(*d, ec);
    if (ec) return Internal("sandbox: creating " + *d + ": " + ec.message());
  }
  plan.overlay_options = "lowerdir=" + lowerdir + ",upperdir=" + plan.upper + ",workdir=" + plan.work;
  if (plan.overlay_options.size() > 3800) {
    return InvalidArgument("sandbox: the overlay's layer paths are too long for one mount");
  }
  for (size_t i = 0; i < plan.volumes.size(); ++i) {
    auto& v = plan.volumes[i];
    std::string field = "volumes[" + std::to_string(i) + "]";
    std::error_code ec;
    fs::path canon = fs::canonical(v.source, ec);
    if (ec) return InvalidArgument(field + ".source: " + v.source + ": " + ec.message());
    v.source = canon.string();
    v.is_dir = fs::is_directory(canon, ec);
    // Normalized: every component a name, none empty ("//", a trailing "/"), "." or "..".
    bool normal = !v.target.empty() && v.target[0] == '/' && v.target != "/";
    for (size_t at = 1; normal && at <= v.target.size();) {
      size_t end = std::min(v.target.find('/', at), v.target.size());
      const std::string part = v.target.substr(at, end - at);
      normal = !part.empty() && part != "." && part != "..";
      at = end + 1;
    }
    if (!normal) {
      return InvalidArgument(field + ".target: must be an absolute path below / with no \".\", \"..\" or empty "
                             "component (" + v.target + ")");
    }
    for (const char* reserved : {"/proc", "/dev", "/sys"}) {
      std::string r = reserved;
      if (v.target == r || v.target.rfind(r + "/", 0) == 0) {
        return InvalidArgument(field + ".target: " + v.target + " is inside " + r + ", which the sandbox owns");
      }
    }
    v.mkdirs.clear();
    for (size_t at = 1; at <= v.target.size(); ++at) {
      if (at == v.target.size() || v.target[at] == '/') v.mkdirs.push_back(v.target.substr(0, at));
    }
  }
  plan.tree_fds.assign(kDeviceCount + plan.volumes.size(), -1);
  return {};
}

namespace {

// A directory fd that closes itself.
struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      if (fd >= 0) ::close(fd);
      fd = std::exchange(o.fd, -1);
    }
    return *this;
  }
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

// hull runs this as root in the host's mount namespace on a rootfs that earlier workloads could
// write: every path is walked one component at a time from a descriptor of the root, with
// O_NOFOLLOW, so a symlink planted anywhere on the way (/tmp -> /etc) is refused instead of
// followed to the host, and a mode is set only on a directory this call created.
Status PremakeMountPoints(RootPlan& plan) {
  Fd root(::open(plan.merged.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (root.fd < 0) return ErrnoError("opening the rootfs " + plan.merged, errno);
  // Walks `inside` (absolute, no ".."), creating missing directories with `mode`; the last
  // component is a regular file instead when `file`.
  auto make = [&](const std::string& inside, mode_t mode, bool file) -> Status {
    Fd dir(::dup(root.fd));
    if (dir.fd < 0) return ErrnoError("dup", errno);
    std::string walked;
    size_t at = 0;
    while (at < inside.size()) {
      while (at < inside.size() && inside[at] == '/') ++at;
      size_t end = inside.find('/', at);
      if (end == std::string::npos) end = inside.size();
      const std::string name = inside.substr(at, end - at);
      at = end;
      if (name.empty()) break;
      if (name == "." || name == "..") return InvalidArgument("rootfs: " + inside + ": \".\" or \"..\" in a mount point");
      walked += "/" + name;
      const bool last = inside.find_first_not_of('/', at) == std::string::npos;
      if (last && file) {
        int fd = ::openat(dir.fd, name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0) {
          ::close(fd);
          return {};
        }
        if (errno != EEXIST) return ErrnoError("creating " + plan.merged + walked, errno);
        // An existing entry is the container's business: the bind happens inside its root.
        struct stat st;
        if (::fstatat(dir.fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
          return ErrnoError("creating " + plan.merged + walked, errno);
        }
        if (S_ISLNK(st.st_mode)) {
          return InvalidArgument("rootfs: " + plan.merged + walked + " is a symlink: hull does not follow "
                                 "symlinks in a rootfs when it makes mount points");
        }
        return {};
      }
      const bool created = ::mkdirat(dir.fd, name.c_str(), last ? mode : 0755) == 0;
      if (!created && errno != EEXIST) return ErrnoError("creating " + plan.merged + walked, errno);
      Fd next(::openat(dir.fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (next.fd < 0) {
        if (errno == ELOOP || errno == ENOTDIR) {
          return InvalidArgument("rootfs: " + plan.merged + walked + " is a symlink or not a directory: hull "
                                 "does not follow symlinks in a rootfs when it makes mount points");
        }
        return ErrnoError("opening " + plan.merged + walked, errno);
      }
      // Past the umask, and only on what this call made: never an existing directory's mode.
      if (created && last && (mode & S_ISVTX) && ::fchmod(next.fd, mode) != 0) {
        return ErrnoError("chmod " + plan.merged + walked, errno);
      }
      dir = std::move(next);
    }
    return {};
  };
  MT_RETURN_IF_ERROR(make("/proc", 0555, false));
  MT_RETURN_IF_ERROR(make("/dev", 0755, false));
  MT_RETURN_IF_ERROR(make("/tmp", 01777, false));
  for (const BindMount& v : plan.volumes) MT_RETURN_IF_ERROR(make(v.target, 0755, !v.is_dir));
  return {};
}

namespace {

// Closes the detached trees SetupRootInChild cloned (those not moved into place yet).
void CloseTrees(const RootPlan& plan) noexcept {
  for (int& fd : plan.tree_fds) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
}

// Opens the mount point `walk.back()` inside the new root, making what is missing: every
// directory of `walk` (its prefixes, "/data", "/data/jobs"), then the last as a directory or,
// when !is_dir, a regular file. Parents are resolved with RESOLVE_IN_ROOT and
// RESOLVE_NO_MAGICLINKS: a symlink in the image stays inside the root, and none reaches a
// descriptor through /proc/self/fd. The last component must not be a symlink at all. Returns
// the O_PATH fd, or -errno. Async-signal-safe.
int OpenMountPoint(const std::vector<std::string>& walk, bool is_dir) noexcept {
  if (walk.empty()) return -EINVAL;
  const int root = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return -errno;
  int parent = root;
  auto done = [&](int result) {
    if (parent != root) ::close(parent);
    ::close(root);
    return result;
  };
  auto base = [](const std::string& path) { return path.c_str() + path.rfind('/') + 1; };
  open_how how{};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  for (size_t k = 0; k + 1 < walk.size(); ++k) {
    int fd = static_cast<int>(syscall(SYS_openat2, root, walk[k].c_str(), &how, sizeof(how)));
    if (fd < 0 && errno == ENOENT) {
      if (::mkdirat(parent, base(walk[k]), 0755) != 0 && errno != EEXIST) return done(-errno);
      fd = static_cast<int>(syscall(SYS_openat2, root, walk[k].c_str(), &how, sizeof(how)));
    }
    if (fd < 0) return done(-errno);
    if (parent != root) ::close(parent);
    parent = fd;
  }
  const char* last = base(walk.back());
  if (is_dir) {
    if (::mkdirat(parent, last, 0755) != 0 && errno != EEXIST) return done(-errno);
  } else {
    int fd = ::openat(parent, last, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd >= 0) {
      ::close(fd);
    } else if (errno != EEXIST) {
      return done(-errno);
    }
  }
  int fd = ::openat(parent, last, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return done(-errno);
  struct stat st;
  int e = 0;
  if (::fstat(fd, &st) != 0) {
    e = errno;
  } else if (S_ISLNK(st.st_mode)) {
    e = ELOOP;
  } else if (is_dir != S_ISDIR(st.st_mode)) {
    e = is_dir ? ENOTDIR : EISDIR;
  }
  if (e != 0) {
    ::close(fd);
    return done(-e);
  }
  return done(fd);
}

// 0, or ELOOP when `path` is a symlink: the fixed mount points (/dev, /proc) are mounted on as
// they are in the rootfs, never through a link an image planted (`proc -> ..` would cover the
// root itself).
int RefuseSymlink(const char* path) noexcept {
  struct stat st;
  if (::lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) return ELOOP;
  return 0;
}

// Moves the detached tree `*tree` onto the mount point OpenMountPoint(walk) opens; the tree's fd
// is closed (and set to -1).
int MoveTreeOnto(int* tree, const std::vector<std::string>& walk, bool is_dir) noexcept {
  int to = OpenMountPoint(walk, is_dir);
  if (to < 0) return -to;
  int rc = ::move_mount(*tree, "", to, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
  int e = errno;
  ::close(to);
  ::close(*tree);
  *tree = -1;
  return rc == 0 ? 0 : e;
}

}  // namespace

// The order is what keeps the host out. Everything taken from the host (the four devices, the
// volumes' sources) is cloned into detached mount trees first, while the host's root is still
// ours; then pivot_root(".", "."), /proc, and the old root is detached, as runc does, before
// any other path of the rootfs is resolved: a symlink in an image (`proc -> ..`, `data -> /`)
// can then reach nothing but the new root, and mount points are opened without magic links.
int SetupRootInChild(const RootPlan& plan, int* error, int* index) noexcept {
  auto fail = [&](IsolationStep step, int err) {
    CloseTrees(plan);
    *error = err;
    return static_cast<int>(step);
  };
  if (!plan.hostname.empty() && ::sethostname(plan.hostname.data(), plan.hostname.size()) != 0) {
    return fail(IsolationStep::kHostname, errno);
  }
  // Nothing mounted here reaches the host, and nothing the host mounts later reaches in.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return fail(IsolationStep::kMountPropagation, errno);
  }
  if (plan.bind_root) {
    // pivot_root needs a mount point: the directory bound onto itself.
    if (::mount(plan.merged.c_str(), plan.merged.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      return fail(IsolationStep::kOverlay, errno);
    }
  } else if (::mount("overlay", plan.merged.c_str(), "overlay", MS_NOSUID | MS_NODEV,
                     plan.overlay_options.c_str()) != 0) {
    return fail(IsolationStep::kOverlay, errno);
  }
  if (plan.tree_fds.size() != kDeviceCount + plan.volumes.size()) return fail(IsolationStep::kPivotRoot, EINVAL);
  for (size_t i = 0; i < kDeviceCount; ++i) {
    plan.tree_fds[i] = ::open_tree(AT_FDCWD, kDevices[i], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (plan.tree_fds[i] < 0) return fail(IsolationStep::kDev, errno);
  }
  for (size_t i = 0; i < plan.volumes.size(); ++i) {
    int& fd = plan.tree_fds[kDeviceCount + i];
    fd = ::open_tree(AT_FDCWD, plan.volumes[i].source.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (fd < 0) {
      *index = static_cast<int>(i);
      return fail(IsolationStep::kVolume, errno);
    }
  }
  if (::chdir(plan.merged.c_str()) != 0) return fail(IsolationStep::kPivotRoot, errno);
  if (syscall(SYS_pivot_root, ".", ".") != 0) return fail(IsolationStep::kPivotRoot, errno);
  // /proc while the old root is still attached: in a user namespace the kernel mounts a procfs
  // only where one is already fully visible (the host's, in the old root). "/proc" is looked up
  // from our root without "..", so the old root stacked on "/" is not in its way; a symlinked
  // /proc (`proc -> ..` would put it on that stack) is refused.
  if (int e = RefuseSymlink("/proc"); e != 0) return fail(IsolationStep::kProc, e);
  if (int e = Mkdir("/proc", 0555); e != 0) return fail(IsolationStep::kProc, e);
  if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    return fail(IsolationStep::kProc, errno);
  }
  // "." follows to the topmost mount stacked there: the old root, which goes now.
  if (::umount2(".", MNT_DETACH) != 0) return fail(IsolationStep::kPivotRoot, errno);
  if (::chdir("/") != 0) return fail(IsolationStep::kPivotRoot, errno);

  // /dev: a tmpfs with the four devices, read-only once made.
  if (int e = RefuseSymlink("/dev"); e != 0) return fail(IsolationStep::kDev, e);
  if (int e = Mkdir("/dev", 0755); e != 0) return fail(IsolationStep::kDev, e);
  if (::mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=64k") != 0) {
    return fail(IsolationStep::kDev, errno);
  }
  for (size_t i = 0; i < kDeviceCount; ++i) {
    if (int e = MoveTreeOnto(&plan.tree_fds[i], kDeviceWalks[i], false); e != 0) return fail(IsolationStep::kDev, e);
  }
  if (::symlink("/proc/self/fd", "/dev/fd") != 0 || ::symlink("/proc/self/fd/0", "/dev/stdin") != 0 ||
      ::symlink("/proc/self/fd/1", "/dev/stdout") != 0 || ::symlink("/proc/self/fd/2", "/dev/stderr") != 0) {
    return fail(IsolationStep::kDev, errno);
  }
  if (int e = Mkdir("/dev/shm", 01777); e != 0) return fail(IsolationStep::kDev, e);
  if (::mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k") != 0) {
    return fail(IsolationStep::kDev, errno);
  }
  if (::mount(nullptr, "/dev", nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, "mode=755,size=64k") != 0) {
    return fail(IsolationStep::kDev, errno);
  }

  for (size_t i = 0; i < plan.volumes.size(); ++i) {
    const BindMount& v = plan.volumes[i];
    *index = static_cast<int>(i);
    if (int e = MoveTreeOnto(&plan.tree_fds[kDeviceCount + i], v.mkdirs, v.is_dir); e != 0) {
      return fail(IsolationStep::kVolume, e);
    }
    if (v.read_only &&
        ::mount(nullptr, v.target.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
                nullptr) != 0) {
      return fail(IsolationStep::kVolume, errno);
    }
  }
  *index = 0;

  // The kernel's knobs: read-only or hidden, as Docker and runc do.
  for (const char* p : {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"}) {
    if (int e = ReadOnly(p); e != 0) return fail(IsolationStep::kMaskPaths, e);
  }
  for (const char* p : {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
                        "/proc/latency_stats", "/proc/kallsyms"}) {
    if (int e = Mask(p); e != 0) return fail(IsolationStep::kMaskPaths, e);
  }
  if (int e = RefuseSymlink("/tmp"); e != 0) return fail(IsolationStep::kMaskPaths, e);
  if (int e = Mkdir("/tmp", 01777); e != 0) return fail(IsolationStep::kMaskPaths, e);
  return 0;
}

}  // namespace mentat
