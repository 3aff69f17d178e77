#include "runtimes/hull/container_root.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>

#include "runtimes/hull/failures.h"
#include "runtimes/hull/rootfs_archive.h"

namespace mentat::hull {
namespace fs = std::filesystem;
namespace {

// argv[0] inside `root`, resolved as the container will (symlinks stay inside the root): an
// executable regular file, or why not.
std::string CheckExecutable(const std::string& root, const std::string& path) {
  int dirfd = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) return std::strerror(errno);
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT;
  int fd = static_cast<int>(syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof(how)));
  int err = errno;
  ::close(dirfd);
  if (fd < 0) return std::strerror(err);
  struct stat st;
  std::string why;
  if (::fstat(fd, &st) != 0) {
    why = std::strerror(errno);
  } else if (!S_ISREG(st.st_mode)) {
    why = "not a regular file";
  } else if ((st.st_mode & 0111) == 0) {
    why = "not executable";
  }
  ::close(fd);
  return why;
}

}  // namespace

Outcome<void> PlanContainerRoot(const StateDir& dir, const HullManifest& m, bool rootless, RootPlan& plan,
                                ContainerState& s) {
  const std::string cdir = dir.ContainerDir(m.name);
  // The root: a directory is bound as it is; a .tar.gz is extracted once into the cache and
  // overlaid with a writable layer of this container's own.
  std::error_code ec;
  if (m.rootfs.ends_with(".tar.gz")) {
    if (!fs::is_regular_file(m.rootfs, ec)) return ManifestError("rootfs", m.rootfs + " is not a file");
    auto cached = CachedRootfs(m.rootfs, dir.CacheDir());
    if (!cached) {
      if (cached.error().code() == Code::kInvalidArgument) return ManifestError("rootfs", cached.error().message());
      return Fail(kExitRuntime, cached.error());
    }
    plan.lower = {*cached};
    plan.upper = s.upper = cdir + "/upper";
    plan.work = s.work = cdir + "/work";
    plan.merged = cdir + "/root";
  } else {
    if (!fs::is_directory(m.rootfs, ec)) return ManifestError("rootfs", m.rootfs + " is not a directory");
    plan.lower = {m.rootfs};
    plan.bind_root = true;
  }
  plan.hostname = m.hostname.empty() ? m.name : m.hostname;
  bool argv0_in_volume = false;
  for (const auto& mt : m.mounts) {
    plan.volumes.push_back({mt.host, mt.container, mt.readonly});
    argv0_in_volume |= m.argv[0] == mt.container || m.argv[0].rfind(mt.container + "/", 0) == 0;
  }
  if (auto st = PlanRoot(plan); !st) {
    // PlanRoot names volumes[i]; the manifest calls them mounts[i].
    std::string msg = st.error().message();
    if (msg.rfind("volumes[", 0) == 0) {
      std::string field = "mounts" + msg.substr(7, msg.find(':') - 7);
      return ManifestError(field, msg.substr(msg.find(':') + 2));
    }
    return ManifestError("rootfs", msg);
  }
  s.root = plan.merged;
  if (rootless && ::geteuid() == 0 && plan.bind_root) {
    // The mapped id cannot create mount points in a root-owned rootfs: hull makes them.
    if (auto st = PremakeMountPoints(plan); !st) return Fail(kExitRuntime, st.error());
  }
  if (!argv0_in_volume) {
    const std::string lookup_root = plan.bind_root ? plan.merged : plan.lower[0];
    if (std::string why = CheckExecutable(lookup_root, m.argv[0]); !why.empty()) {
      return Fail(kExitExec, Error(Code::kInvalidArgument, "exec failed: " + m.argv[0] + ": " + why +
                                                               " (in rootfs " + m.rootfs + ")"));
    }
  }
  return {};
}

}  // namespace mentat::hull
