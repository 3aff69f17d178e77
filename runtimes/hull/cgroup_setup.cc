#include "runtimes/hull/cgroup_setup.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <algorithm>
#include <exception>

namespace mentat::hull {

void CgroupSetup::Make(const std::string& path, const CgroupLimits& limits, bool may_skip) noexcept {
  int result = kReady;
  try {
    auto host = CgroupHost::Probe();
    if (auto g = host->Create(path, limits); g) {
      group = std::move(*g);
      version = host->Version();
      files = group->JoinFiles();
      for (const auto& f : files) cfiles.push_back(f.c_str());
    } else if (may_skip) {
      warning = "cgroup limits skipped: " + g.error().message();
      result = kNone;
    } else {
      error = g.error();
      result = kFailed;
    }
  } catch (const std::exception& e) {
    if (group) group->Destroy();
    group.reset();
    error = Error(Code::kInternal, std::string("making the cgroup: ") + e.what());
    result = kFailed;
  }
  state.store(result, std::memory_order_release);
  syscall(SYS_futex, reinterpret_cast<int*>(&state), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

int JoinCgroupWhenMade(const CgroupSetup& cs) noexcept {
  timespec deadline;
  ::clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += 10;
  for (;;) {
    int st = cs.state.load(std::memory_order_acquire);
    if (st == CgroupSetup::kNone) return 0;
    if (st == CgroupSetup::kFailed) return ECANCELED;
    if (st == CgroupSetup::kReady) break;
    timespec now;
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec > deadline.tv_sec || (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec)) {
      return ETIMEDOUT;
    }
    timespec tick{0, 100'000'000};
    syscall(SYS_futex, const_cast<int*>(reinterpret_cast<const int*>(&cs.state)), FUTEX_WAIT_PRIVATE,
            CgroupSetup::kPending, &tick, nullptr, 0);
  }
  for (const char* f : cs.cfiles) {
    int fd = ::open(f, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    ssize_t n;
    do {
      n = ::write(fd, "0", 1);
    } while (n < 0 && errno == EINTR);
    int e = errno;
    ::close(fd);
    if (n < 0) return e;
  }
  return 0;
}

CgroupLimits LimitsOf(const HullManifest& m) {
  CgroupLimits l;
  l.memory_bytes = m.limits.memory_mb << 20;
  l.cpu_percent = std::max<int64_t>(1, std::llround(m.limits.cpu * 100));
  l.pids_max = m.limits.pids;
  return l;
}

}  // namespace mentat::hull
