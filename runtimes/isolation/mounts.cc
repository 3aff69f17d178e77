#include "runtimes/isolation/mounts.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace mentat {
namespace {

constexpr char kOldRoot[] = "/.mentat-oldroot";

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
    v.old_root_source = std::string(kOldRoot) + v.source;
  }
  return {};
}

Status PremakeMountPoints(RootPlan& plan) {
  auto mkdir = [&](const std::string& inside, mode_t mode) -> Status {
    const std::string dir = plan.merged + inside;
    if (::mkdir(dir.c_str(), mode) != 0 && errno != EEXIST) return ErrnoError("creating " + dir, errno);
    if (mode & S_ISVTX) ::chmod(dir.c_str(), mode);  // past the umask
    return {};
  };
  MT_RETURN_IF_ERROR(mkdir(kOldRoot, 0700));
  plan.old_root_premade = true;
  MT_RETURN_IF_ERROR(mkdir("/proc", 0555));
  MT_RETURN_IF_ERROR(mkdir("/dev", 0755));
  MT_RETURN_IF_ERROR(mkdir("/tmp", 01777));
  for (const BindMount& v : plan.volumes) {
    for (size_t k = 0; k + 1 < v.mkdirs.size(); ++k) MT_RETURN_IF_ERROR(mkdir(v.mkdirs[k], 0755));
    if (v.is_dir) {
      MT_RETURN_IF_ERROR(mkdir(v.target, 0755));
    } else {
      const std::string file = plan.merged + v.target;
      int fd = ::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
      if (fd < 0) return ErrnoError("creating " + file, errno);
      ::close(fd);
    }
  }
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
  // pivot_root: the new root's old-root directory lives in the writable layer for a moment.
  if (::chdir(plan.merged.c_str()) != 0) return fail(IsolationStep::kPivotRoot, errno);
  if (int e = Mkdir(kOldRoot + 1, 0700); e != 0) return fail(IsolationStep::kPivotRoot, e);
  if (syscall(SYS_pivot_root, ".", kOldRoot + 1) != 0) return fail(IsolationStep::kPivotRoot, errno);
  if (::chdir("/") != 0) return fail(IsolationStep::kPivotRoot, errno);

  if (int e = Mkdir("/proc", 0555); e != 0) return fail(IsolationStep::kProc, e);
  if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    return fail(IsolationStep::kProc, errno);
  }

  // /dev: a tmpfs with the four devices bound from the host, read-only once made.
  if (int e = Mkdir("/dev", 0755); e != 0) return fail(IsolationStep::kDev, e);
  if (::mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=64k") != 0) {
    return fail(IsolationStep::kDev, errno);
  }
  static const char* const kDevices[] = {"null", "zero", "random", "urandom"};
  for (const char* d : kDevices) {
    char target[32] = "/dev/";
    char source[64];
    std::strcat(target, d);
    std::strcpy(source, kOldRoot);
    std::strcat(source, "/dev/");
    std::strcat(source, d);
    int fd = ::open(target, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
    if (fd < 0) return fail(IsolationStep::kDev, errno);
    ::close(fd);
    if (::mount(source, target, nullptr, MS_BIND, nullptr) != 0) return fail(IsolationStep::kDev, errno);
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
    for (size_t k = 0; k + 1 < v.mkdirs.size(); ++k) {
      if (int e = Mkdir(v.mkdirs[k].c_str(), 0755); e != 0) return fail(IsolationStep::kVolume, e);
    }
    if (v.is_dir) {
      if (int e = Mkdir(v.target.c_str(), 0755); e != 0) return fail(IsolationStep::kVolume, e);
    } else {
      int fd = ::open(v.target.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
      if (fd < 0) return fail(IsolationStep::kVolume, errno);
      ::close(fd);
    }
    if (::mount(v.old_root_source.c_str(), v.target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      return fail(IsolationStep::kVolume, errno);
    }
    if (v.read_only &&
        ::mount(nullptr, v.target.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
                nullptr) != 0) {
      return fail(IsolationStep::kVolume, errno);
    }
  }
  *index = 0;

  // The host's root goes: nothing outside the sandbox stays reachable.
  if (::umount2(kOldRoot, MNT_DETACH) != 0) return fail(IsolationStep::kPivotRoot, errno);
  if (!plan.old_root_premade && ::rmdir(kOldRoot) != 0) return fail(IsolationStep::kPivotRoot, errno);

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
