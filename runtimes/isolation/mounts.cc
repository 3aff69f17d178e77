#include "runtimes/isolation/mounts.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

namespace mentat {
namespace {

// After pivot_root the host's root is reached through a descriptor opened before it:
// "/proc/self/fd/N" + a host path. Room for that prefix and a source PlanRoot accepted.
constexpr size_t kMaxSource = 4000;
constexpr char kFdPrefix[] = "/proc/self/fd/";

// `prefix` (the fd's magic link, e.g. "/proc/self/fd/7") + `path` into `out`, or false when it
// does not fit. Async-signal-safe.
bool JoinPath(char* out, size_t size, const char* prefix, const char* path) noexcept {
  size_t a = std::strlen(prefix), b = std::strlen(path);
  if (a + b + 1 > size) return false;
  std::memcpy(out, prefix, a);
  std::memcpy(out + a, path, b + 1);
  return true;
}

// "/proc/self/fd/<fd>" into `out` (at least 32 bytes). Async-signal-safe.
void FdLink(char* out, int fd) noexcept {
  char digits[12];
  int n = 0;
  unsigned v = static_cast<unsigned>(fd);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  std::memcpy(out, kFdPrefix, sizeof(kFdPrefix) - 1);
  size_t at = sizeof(kFdPrefix) - 1;
  while (n > 0) out[at++] = digits[--n];
  out[at] = '\0';
}

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
    if (v.target.empty() || v.target[0] != '/' || v.target == "/" ||
        v.target.find("/../") != std::string::npos || v.target.ends_with("/..")) {
      return InvalidArgument(field + ".target: must be an absolute path below / without \"..\"");
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
    if (v.source.size() > kMaxSource) return InvalidArgument(field + ".source: longer than " + std::to_string(kMaxSource) + " bytes");
  }
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

int SetupRootInChild(const RootPlan& plan, int* error, int* index) noexcept {
  auto fail = [&](IsolationStep step, int err) {
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
  // pivot_root(".", ".") as runc does: the old root ends up stacked on the new one, and no
  // directory is made in (or left behind in) the rootfs. Until it is detached below, the devices
  // and volume sources are bound from it through a descriptor opened now. Absolute paths already
  // resolve in the new root: a walk never descends into a mount stacked on its starting point.
  const int old_root = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (old_root < 0) return fail(IsolationStep::kPivotRoot, errno);
  auto fail_closing = [&](IsolationStep step, int err) {
    ::close(old_root);
    return fail(step, err);
  };
  if (::chdir(plan.merged.c_str()) != 0) return fail_closing(IsolationStep::kPivotRoot, errno);
  if (syscall(SYS_pivot_root, ".", ".") != 0) return fail_closing(IsolationStep::kPivotRoot, errno);
  char old_root_link[32];
  FdLink(old_root_link, old_root);

  // /proc first: the old root's descriptor is reached through it.
  if (int e = Mkdir("/proc", 0555); e != 0) return fail_closing(IsolationStep::kProc, e);
  if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    return fail_closing(IsolationStep::kProc, errno);
  }

  // /dev: a tmpfs with the four devices bound from the host, read-only once made.
  if (int e = Mkdir("/dev", 0755); e != 0) return fail_closing(IsolationStep::kDev, e);
  if (::mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=64k") != 0) {
    return fail_closing(IsolationStep::kDev, errno);
  }
  static const char* const kDevices[] = {"/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"};
  for (const char* d : kDevices) {
    char source[64];
    JoinPath(source, sizeof(source), old_root_link, d);
    int fd = ::open(d, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
    if (fd < 0) return fail_closing(IsolationStep::kDev, errno);
    ::close(fd);
    if (::mount(source, d, nullptr, MS_BIND, nullptr) != 0) return fail_closing(IsolationStep::kDev, errno);
  }
  if (::symlink("/proc/self/fd", "/dev/fd") != 0 || ::symlink("/proc/self/fd/0", "/dev/stdin") != 0 ||
      ::symlink("/proc/self/fd/1", "/dev/stdout") != 0 || ::symlink("/proc/self/fd/2", "/dev/stderr") != 0) {
    return fail_closing(IsolationStep::kDev, errno);
  }
  if (int e = Mkdir("/dev/shm", 01777); e != 0) return fail_closing(IsolationStep::kDev, e);
  if (::mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k") != 0) {
    return fail_closing(IsolationStep::kDev, errno);
  }
  if (::mount(nullptr, "/dev", nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, "mode=755,size=64k") != 0) {
    return fail_closing(IsolationStep::kDev, errno);
  }

  for (size_t i = 0; i < plan.volumes.size(); ++i) {
    const BindMount& v = plan.volumes[i];
    *index = static_cast<int>(i);
    for (size_t k = 0; k + 1 < v.mkdirs.size(); ++k) {
      if (int e = Mkdir(v.mkdirs[k].c_str(), 0755); e != 0) return fail_closing(IsolationStep::kVolume, e);
    }
    if (v.is_dir) {
      if (int e = Mkdir(v.target.c_str(), 0755); e != 0) return fail_closing(IsolationStep::kVolume, e);
    } else {
      // An existing file is mounted over as it is: opening it to write would need a permission
      // only its owner has (hull --rootless premakes it as root). A symlink is refused.
      struct stat st;
      if (::lstat(v.target.c_str(), &st) == 0) {
        if (S_ISLNK(st.st_mode)) return fail_closing(IsolationStep::kVolume, ELOOP);
      } else {
        int fd = ::open(v.target.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0) return fail_closing(IsolationStep::kVolume, errno);
        ::close(fd);
      }
    }
    char source[sizeof(old_root_link) + kMaxSource + 1];
    if (!JoinPath(source, sizeof(source), old_root_link, v.source.c_str())) {
      return fail_closing(IsolationStep::kVolume, ENAMETOOLONG);
    }
    if (::mount(source, v.target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      return fail_closing(IsolationStep::kVolume, errno);
    }
    if (v.read_only &&
        ::mount(nullptr, v.target.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
                nullptr) != 0) {
      return fail_closing(IsolationStep::kVolume, errno);
    }
  }
  *index = 0;

  // The host's root goes: nothing outside the sandbox stays reachable. "." (the new root, our
  // directory since before pivot_root) resolves to the topmost mount stacked there: the old root.
  ::close(old_root);
  if (::umount2(".", MNT_DETACH) != 0) return fail(IsolationStep::kPivotRoot, errno);
  if (::chdir("/") != 0) return fail(IsolationStep::kPivotRoot, errno);

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
