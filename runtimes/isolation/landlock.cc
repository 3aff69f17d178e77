#include "runtimes/isolation/landlock.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

// Rights newer than this system's headers.
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif

namespace mentat {
namespace {

constexpr uint64_t kReadRights =
    LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;

int CreateRuleset(const landlock_ruleset_attr* attr, size_t size, uint32_t flags) {
  return static_cast<int>(syscall(SYS_landlock_create_ruleset, attr, size, flags));
}

// Allows `rights` beneath `path` (or on it, for a file); a missing path is skipped.
int AllowPath(int ruleset, const char* path, uint64_t rights) noexcept {
  int fd = ::open(path, O_PATH | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : errno;
  landlock_path_beneath_attr rule{};
  rule.allowed_access = rights;
  rule.parent_fd = fd;
  int rc = static_cast<int>(syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0));
  int err = rc == 0 ? 0 : errno;
  ::close(fd);
  return err;
}

int AllowFd(int ruleset, int fd, uint64_t rights) noexcept {
  landlock_path_beneath_attr rule{};
  rule.allowed_access = rights;
  rule.parent_fd = fd;
  int rc = static_cast<int>(syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0));
  // EBADFD/EINVAL: stdout is a pipe or a socket, which Landlock does not restrict anyway.
  return rc == 0 || errno == EBADFD || errno == EINVAL || errno == EBADF ? 0 : errno;
}

struct Dirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

}  // namespace

LandlockPlan PlanLandlock() {
  LandlockPlan plan;
  int abi = CreateRuleset(nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  if (abi <= 0) return plan;
  plan.abi = abi;
  plan.handled = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
                 LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
                 LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |
                 LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
                 LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
                 LANDLOCK_ACCESS_FS_MAKE_SYM;
  plan.file_rights = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                     LANDLOCK_ACCESS_FS_READ_FILE;
  if (abi >= 2) plan.handled |= LANDLOCK_ACCESS_FS_REFER;
  if (abi >= 3) {
    plan.handled |= LANDLOCK_ACCESS_FS_TRUNCATE;
    plan.file_rights |= LANDLOCK_ACCESS_FS_TRUNCATE;
  }
  if (abi >= 5) {
    plan.handled |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
    plan.file_rights |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
  }
  return plan;
}

Json DescribeLandlock(const LandlockPlan& plan) {
  return {{"abi", plan.abi}, {"enforced", plan.abi > 0}};
}

int ApplyLandlockInChild(const LandlockPlan& plan, int exec_fd) noexcept {
  if (plan.abi <= 0) return 0;
  landlock_ruleset_attr attr{};
  attr.handled_access_fs = plan.handled;
  int ruleset = CreateRuleset(&attr, sizeof(attr), 0);
  if (ruleset < 0) return errno;
  int err = AllowPath(ruleset, "/", kReadRights);
  // Every entry of the root but the kernel's own trees gets every right.
  int root = err == 0 ? ::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  if (err == 0 && root < 0) err = errno;
  alignas(8) char buf[4096];
  while (err == 0) {
    long n = syscall(SYS_getdents64, root, buf, sizeof(buf));
    if (n < 0) err = errno;
    if (n <= 0) break;
    for (long at = 0; at < n && err == 0;) {
      auto* d = reinterpret_cast<Dirent64*>(buf + at);
      at += d->d_reclen;
      const char* name = d->d_name;
      if (!std::strcmp(name, ".") || !std::strcmp(name, "..") || !std::strcmp(name, "proc") ||
          !std::strcmp(name, "sys") || !std::strcmp(name, "dev")) {
        continue;
      }
      char path[300] = "/";
      std::strncat(path, name, sizeof(path) - 2);
      uint64_t rights = d->d_type == DT_DIR ? plan.handled : plan.file_rights;
      if (d->d_type == DT_LNK) continue;  // its target is covered where it lives
      err = AllowPath(ruleset, path, rights);
      if (err == EINVAL && rights != plan.file_rights) err = AllowPath(ruleset, path, plan.file_rights);
    }
  }
  if (root >= 0) ::close(root);
  const uint64_t rw = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                      (plan.abi >= 3 ? LANDLOCK_ACCESS_FS_TRUNCATE : 0);
  for (const char* dev : {"/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"}) {
    if (err == 0) err = AllowPath(ruleset, dev, rw);
  }
  if (err == 0) err = AllowPath(ruleset, "/dev/shm", plan.handled);
  if (err == 0) err = AllowFd(ruleset, 1, rw);
  if (err == 0) err = AllowFd(ruleset, 2, rw);
  if (err == 0 && exec_fd >= 0) {
    err = AllowFd(ruleset, exec_fd, LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE);
  }
  if (err == 0 && syscall(SYS_landlock_restrict_self, ruleset, 0) != 0) err = errno;
  ::close(ruleset);
  return err;
}

}  // namespace mentat
