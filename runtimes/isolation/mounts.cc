#include "runtimes/isolation/mounts.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
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
// RootPlan::tree_fds: the devices, then /proc's new mount, then the volumes.
constexpr size_t kProcSlot = kDeviceCount;
constexpr size_t kFirstVolumeSlot = kDeviceCount + 1;
// Mount points as OpenMountPoint walks them (built at start-up, only read in the child).
const std::vector<std::string> kProcWalk = {"/proc"};
const std::vector<std::string> kDevWalk = {"/dev"};

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
  plan.tree_fds.assign(kFirstVolumeSlot + plan.volumes.size(), -1);
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

// Opens `name` in the directory `parent` as a mount point: made if missing (a directory, or a
// regular file when !is_dir), never a symlink, and of the kind asked for. Returns the O_PATH
// fd, or -errno. Async-signal-safe.
int OpenAt(int parent, const char* name, bool is_dir) noexcept {
  if (is_dir) {
    if (::mkdirat(parent, name, 0755) != 0 && errno != EEXIST) return -errno;
  } else {
    int fd = ::openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd >= 0) {
      ::close(fd);
    } else if (errno != EEXIST) {
      return -errno;
    }
  }
  int fd = ::openat(parent, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -errno;
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
    return -e;
  }
  return fd;
}

// openat2 under RESOLVE_IN_ROOT returns EAGAIN for a path with ".." whenever a rename happened
// anywhere meanwhile (images have `var/run -> ../run`): retried a few times.
int OpenInRoot(int root, const char* path, const open_how& how) noexcept {
  int fd = -1;
  for (int attempt = 0; attempt < 32; ++attempt) {
    fd = static_cast<int>(syscall(SYS_openat2, root, path, &how, sizeof(how)));
    if (fd >= 0 || errno != EAGAIN) break;
  }
  return fd;
}

// Opens the mount point `walk.back()` inside the new root, making what is missing: every
// directory of `walk` (its prefixes, "/data", "/data/jobs"), then the last (OpenAt). Parents
// are resolved with RESOLVE_IN_ROOT and RESOLVE_NO_MAGICLINKS: a symlink in the image stays
// inside the root, and none reaches a descriptor through /proc/self/fd. Returns the O_PATH fd,
// or -errno. Async-signal-safe.
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
    int fd = OpenInRoot(root, walk[k].c_str(), how);
    if (fd < 0 && errno == ENOENT) {
      if (::mkdirat(parent, base(walk[k]), 0755) != 0 && errno != EEXIST) return done(-errno);
      fd = OpenInRoot(root, walk[k].c_str(), how);
    }
    if (fd < 0) return done(-errno);
    if (parent != root) ::close(parent);
    parent = fd;
  }
  return done(OpenAt(parent, base(walk.back()), is_dir));
}

// Moves the detached mount `*tree` onto the mount point `to` (closed; a negative `to` is the
// -errno of opening it); `*tree` is closed and set to -1 unless `keep`. 0 or an errno.
int MoveOnto(int* tree, int to, bool keep = false) noexcept {
  int e = -to;
  if (to >= 0) {
    e = ::move_mount(*tree, "", to, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) == 0 ? 0 : errno;
    ::close(to);
  }
  if (!keep) {
    ::close(*tree);
    *tree = -1;
  }
  return e;
}

// A new, detached mount of `fstype` with the string options `kv` (key, value, ..., nullptr) and
// the mount attributes `attrs`: its fd, or -errno. Async-signal-safe.
int NewMount(const char* fstype, const char* const* kv, unsigned attrs) noexcept {
  int fsfd = ::fsopen(fstype, FSOPEN_CLOEXEC);
  if (fsfd < 0) return -errno;
  for (; kv && kv[0]; kv += 2) {
    if (::fsconfig(fsfd, FSCONFIG_SET_STRING, kv[0], kv[1], 0) != 0) {
      int e = errno;
      ::close(fsfd);
      return -e;
    }
  }
  int mfd = -1;
  if (::fsconfig(fsfd, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) == 0) mfd = ::fsmount(fsfd, FSMOUNT_CLOEXEC, attrs);
  int e = errno;
  ::close(fsfd);
  return mfd >= 0 ? mfd : -e;
}

int SetAttrs(int mount_fd, unsigned attrs, bool recursive) noexcept {
  mount_attr attr{};
  attr.attr_set = attrs;
  return ::mount_setattr(mount_fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof(attr)) == 0
             ? 0
             : errno;
}

}  // namespace

// The order is what keeps the host out. Everything taken from the host (the four devices, the
// volumes' sources, a procfs, which a user namespace may only mount while the host's is
// visible) is made into detached mounts first, while the host's root is still ours; then
// pivot_root(".", ".") and the old root is detached at once, as runc does, before any path of
// the rootfs is resolved. After that a symlink in an image (`proc -> ..`, `data -> /`) can reach
// nothing but the new root, and mount points are opened without magic links and mounted on by
// descriptor (move_mount), so nothing is looked up twice.
std::string OverlayUpperAdvice(const std::string& upper) {
  struct statfs fs {};
  if (::statfs(upper.c_str(), &fs) != 0 || fs.f_type != OVERLAYFS_SUPER_MAGIC) return "";
  return " (" + upper +
         " is on overlayfs, which cannot hold an overlay's upper layer, as inside a container's "
         "own root filesystem: keep the data directory on ext4, xfs, btrfs or tmpfs, a volume in "
         "a container)";
}

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
  if (plan.tree_fds.size() != kFirstVolumeSlot + plan.volumes.size()) return fail(IsolationStep::kPivotRoot, EINVAL);
  for (size_t i = 0; i < kDeviceCount; ++i) {
    plan.tree_fds[i] = ::open_tree(AT_FDCWD, kDevices[i], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (plan.tree_fds[i] < 0) return fail(IsolationStep::kDev, errno);
  }
  int& proc = plan.tree_fds[kProcSlot];
  static const char* const kProcOptions[] = {"source", "proc", nullptr};
  proc = NewMount("proc", kProcOptions, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
  if (proc < 0) return fail(IsolationStep::kProc, -proc);
  for (size_t i = 0; i < plan.volumes.size(); ++i) {
    const BindMount& v = plan.volumes[i];
    int& tree = plan.tree_fds[kFirstVolumeSlot + i];
    *index = static_cast<int>(i);
    // The source PlanRoot made canonical, with no symlink followed now: one swapped in since
    // (by whoever can write there) fails the start instead of being bound.
    open_how how{};
    how.flags = O_PATH | O_CLOEXEC;
    how.resolve = RESOLVE_NO_SYMLINKS;
    int source = static_cast<int>(syscall(SYS_openat2, AT_FDCWD, v.source.c_str(), &how, sizeof(how)));
    if (source < 0) return fail(IsolationStep::kVolume, errno);
    tree = ::open_tree(source, "", AT_EMPTY_PATH | OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    int e = errno;
    ::close(source);
    if (tree < 0) return fail(IsolationStep::kVolume, e);
    // Read-only through and through: every mount under the source too.
    if (v.read_only) {
      if (int err = SetAttrs(tree, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, true); err != 0) {
        return fail(IsolationStep::kVolume, err);
      }
    }
  }
  *index = 0;
  if (::chdir(plan.merged.c_str()) != 0) return fail(IsolationStep::kPivotRoot, errno);
  if (syscall(SYS_pivot_root, ".", ".") != 0) return fail(IsolationStep::kPivotRoot, errno);
  // "." follows to the topmost mount stacked there: the old root, which goes now.
  if (::umount2(".", MNT_DETACH) != 0) return fail(IsolationStep::kPivotRoot, errno);
  if (::chdir("/") != 0) return fail(IsolationStep::kPivotRoot, errno);

  if (int e = MoveOnto(&proc, OpenMountPoint(kProcWalk, true)); e != 0) return fail(IsolationStep::kProc, e);

  // /dev: a tmpfs with the four devices, /dev/shm and the std links, read-only once made. Made
  // through the tmpfs's own descriptor: nothing of it is looked up by path.
  static const char* const kDevOptions[] = {"source", "tmpfs", "mode", "755", "size", "64k", nullptr};
  int dev = NewMount("tmpfs", kDevOptions, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
  if (dev < 0) return fail(IsolationStep::kDev, -dev);
  auto fail_dev = [&](int err) {
    ::close(dev);
    return fail(IsolationStep::kDev, err);
  };
  if (int e = MoveOnto(&dev, OpenMountPoint(kDevWalk, true), /*keep=*/true); e != 0) return fail_dev(e);
  for (size_t i = 0; i < kDeviceCount; ++i) {
    const char* name = kDevices[i] + sizeof("/dev/") - 1;
    if (int e = MoveOnto(&plan.tree_fds[i], OpenAt(dev, name, false)); e != 0) return fail_dev(e);
  }
  if (::symlinkat("/proc/self/fd", dev, "fd") != 0 || ::symlinkat("/proc/self/fd/0", dev, "stdin") != 0 ||
      ::symlinkat("/proc/self/fd/1", dev, "stdout") != 0 || ::symlinkat("/proc/self/fd/2", dev, "stderr") != 0) {
    return fail_dev(errno);
  }
  static const char* const kShmOptions[] = {"source", "shm", "mode", "1777", "size", "65536k", nullptr};
  int shm = NewMount("tmpfs", kShmOptions, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
  if (shm < 0) return fail_dev(-shm);
  if (int e = MoveOnto(&shm, OpenAt(dev, "shm", true)); e != 0) return fail_dev(e);
  if (int e = SetAttrs(dev, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, false); e != 0) {
    return fail_dev(e);
  }
  ::close(dev);

  for (size_t i = 0; i < plan.volumes.size(); ++i) {
    const BindMount& v = plan.volumes[i];
    *index = static_cast<int>(i);
    if (int e = MoveOnto(&plan.tree_fds[kFirstVolumeSlot + i], OpenMountPoint(v.mkdirs, v.is_dir)); e != 0) {
      return fail(IsolationStep::kVolume, e);
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
  if (int e = Mkdir("/tmp", 01777); e != 0) return fail(IsolationStep::kMaskPaths, e);
  return 0;
}

}  // namespace mentat
