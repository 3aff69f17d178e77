#include "runtimes/hull/leases.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

namespace mentat::hull {
namespace {

std::string LeasePath(const StateDir& dir, uint32_t ip) { return dir.root() + "/leases/" + Ipv4ToString(ip); }

struct Owner {
  std::string name;
  pid_t pid = 0;
  uint64_t ticks = 0;
};

bool ReadOwner(const std::string& path, Owner* o) {
  std::ifstream f(path);
  return static_cast<bool>(f >> o->name >> o->pid >> o->ticks);
}

bool OwnerAlive(const Owner& o) {
  auto st = ReadProcStat(o.pid);
  return st && st->start_ticks == o.ticks && st->state != 'Z' && st->state != 'X';
}

Status WriteOwner(int fd, const std::string& path, const std::string& name, pid_t pid, uint64_t ticks) {
  const std::string text = name + " " + std::to_string(pid) + " " + std::to_string(ticks) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    return ErrnoError("writing lease " + path, errno);
  }
  return {};
}

// Holds leases.lock while alive.
class DirLock {
 public:
  explicit DirLock(const StateDir& dir) {
    fd_ = ::open((dir.root() + "/leases.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ >= 0) {
      while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
      }
    }
  }
  ~DirLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// O_EXCL create of leases/<ip>; on EEXIST a stale lease is removed and the create retried once.
// Returns 0, EEXIST when live, or another errno. *holder: the live owner.
int TryLease(const StateDir& dir, uint32_t ip, const LeaseRequest& r, Owner* holder) {
  const std::string path = LeasePath(dir, ip);
  for (int attempt = 0; attempt < 2; ++attempt) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      auto st = WriteOwner(fd, path, r.name, r.owner, r.owner_ticks);
      ::close(fd);
      if (!st) {
        ::unlink(path.c_str());
        return EIO;
      }
      return 0;
    }
    if (errno != EEXIST) return errno;
    Owner o;
    // A half-written lease (its writer died between create and write) is stale too.
    if (ReadOwner(path, &o) && OwnerAlive(o)) {
      *holder = o;
      return EEXIST;
    }
    ::unlink(path.c_str());
  }
  return EEXIST;
}

}  // namespace

Result<uint32_t> AcquireLease(const StateDir& dir, const LeaseRequest& r) {
  MT_RETURN_IF_ERROR(dir.Ensure());
  DirLock lock(dir);
  if (!lock.ok()) return ErrnoError("locking " + dir.root() + "/leases.lock", errno);
  Owner holder;
  if (r.static_ip != 0) {
    int err = TryLease(dir, r.static_ip, r, &holder);
    if (err == EEXIST) {
      return Conflict(Ipv4ToString(r.static_ip) + " is leased by container " + holder.name + " (pid " +
                      std::to_string(holder.pid) + ")");
    }
    if (err != 0) return ErrnoError("leasing " + Ipv4ToString(r.static_ip), err);
    return r.static_ip;
  }
  // From .2 (.1 is the bridge) up to the last address before the broadcast.
  for (uint32_t ip = r.subnet.Gateway() + 1; ip < r.subnet.Broadcast(); ++ip) {
    int err = TryLease(dir, ip, r, &holder);
    if (err == 0) return ip;
    if (err != EEXIST) return ErrnoError("leasing " + Ipv4ToString(ip), err);
  }
  return Unavailable("no free address in " + r.subnet.ToString());
}

Status RecordLeaseOwner(const StateDir& dir, uint32_t ip, const std::string& name, pid_t pid, uint64_t ticks) {
  const std::string path = LeasePath(dir, ip);
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("opening lease " + path, errno);
  auto st = WriteOwner(fd, path, name, pid, ticks);
  ::close(fd);
  return st;
}

bool ReleaseLease(const StateDir& dir, const std::string& ip, const std::string& name, pid_t pid) {
  if (ip.empty()) return false;
  DirLock lock(dir);
  const std::string path = dir.root() + "/leases/" + ip;
  Owner o;
  return ReadOwner(path, &o) && o.name == name && o.pid == pid && ::unlink(path.c_str()) == 0;
}

void ReleaseNetwork(const StateDir& dir, const ContainerState& s) {
  if (s.ip.empty()) return;
  if (ReleaseLease(dir, s.ip, s.name, s.pid) && !s.host_veth.empty()) DeleteLink(s.host_veth);
}

}  // namespace mentat::hull
