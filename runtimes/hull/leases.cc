#include "runtimes/hull/leases.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace mentat::hull {
namespace {

std::string LeasePath(const std::string& dir, uint32_t ip) { return dir + "/leases/" + Ipv4ToString(ip); }

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

std::string OwnerText(const std::string& name, pid_t pid, uint64_t ticks) {
  return name + " " + std::to_string(pid) + " " + std::to_string(ticks) + "\n";
}

Status WriteAll(int fd, const std::string& path, const std::string& text) {
  if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return ErrnoError("writing lease " + path, errno ? errno : EIO);
  }
  return {};
}

Status EnsureLeaseDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir + "/leases", ec);
  if (ec) return Internal("creating " + dir + "/leases: " + ec.message());
  return {};
}

// Holds <dir>/leases.lock while alive.
class DirLock {
 public:
  explicit DirLock(const std::string& dir) {
    fd_ = ::open((dir + "/leases.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
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
int TryLease(const std::string& dir, uint32_t ip, const LeaseRequest& r, Owner* holder) {
  const std::string path = LeasePath(dir, ip);
  for (int attempt = 0; attempt < 2; ++attempt) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      auto st = WriteAll(fd, path, OwnerText(r.name, r.owner, r.owner_ticks));
      ::close(fd);
      if (!st) {
        ::unlink(path.c_str());
        return EIO;
      }
      return 0;
    }
    if (errno != EEXIST) return errno;
    Owner o;
    // A half-written lease (its writer died between create and write) is stale too; owners are
    // replaced by rename, never rewritten in place, so a live lease is never seen half-written.
    if (ReadOwner(path, &o) && OwnerAlive(o)) {
      *holder = o;
      return EEXIST;
    }
    // Its holder is gone: the veth of the address is an orphan (or dying with its namespace).
    if (r.delete_stale_veth) DeleteLink(HostVethName(ip));
    ::unlink(path.c_str());
  }
  return EEXIST;
}

// The network namespace `dir` belongs to is ours ("net-<inode>" of /proc/self/ns/net).
bool InOurNetns(const std::string& dir) {
  struct stat st;
  if (::stat("/proc/thread-self/ns/net", &st) != 0) return false;
  return dir.find("/net-" + std::to_string(st.st_ino) + "/") != std::string::npos;
}

}  // namespace

Result<std::string> LeaseDirFor(const std::string& bridge) {
  struct stat st;
  if (::stat("/proc/thread-self/ns/net", &st) != 0) return ErrnoError("reading /proc/thread-self/ns/net", errno);
  const char* root = std::getenv("HULL_LEASE_ROOT");
  return std::string(root && *root ? root : "/run/hull") + "/net-" + std::to_string(st.st_ino) + "/" + bridge;
}

Result<uint32_t> AcquireLease(const std::string& dir, const LeaseRequest& r) {
  MT_RETURN_IF_ERROR(EnsureLeaseDir(dir));
  DirLock lock(dir);
  if (!lock.ok()) return ErrnoError("locking " + dir + "/leases.lock", errno);
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

Status RecordLeaseOwner(const std::string& dir, uint32_t ip, const std::string& name, pid_t pid, uint64_t ticks) {
  DirLock lock(dir);
  if (!lock.ok()) return ErrnoError("locking " + dir + "/leases.lock", errno);
  const std::string path = LeasePath(dir, ip);
  // Still ours? A lease that went meanwhile must not come back.
  if (::access(path.c_str(), F_OK) != 0) return ErrnoError("lease " + path, errno);
  const std::string tmp = path + ".new";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("writing lease " + tmp, errno);
  auto st = WriteAll(fd, tmp, OwnerText(name, pid, ticks));
  ::close(fd);
  if (st && ::rename(tmp.c_str(), path.c_str()) != 0) st = ErrnoError("renaming " + tmp, errno);
  if (!st) ::unlink(tmp.c_str());
  return st;
}

bool ReleaseLease(const std::string& dir, const std::string& ip, const std::string& name, pid_t pid,
                  const std::string& host_veth) {
  if (ip.empty()) return false;
  DirLock lock(dir);
  if (!lock.ok()) return false;
  const std::string path = dir + "/leases/" + ip;
  Owner o;
  if (!ReadOwner(path, &o) || o.name != name || o.pid != pid) return false;
  if (!host_veth.empty()) DeleteLink(host_veth);
  return ::unlink(path.c_str()) == 0;
}

void ReleaseNetwork(const StateDir& dir, const ContainerState& s) {
  if (s.ip.empty()) return;
  // A record from before host-wide leases kept them in the state directory.
  const std::string lease_dir = s.lease_dir.empty() ? dir.root() : s.lease_dir;
  ReleaseLease(lease_dir, s.ip, s.name, s.pid, InOurNetns(lease_dir) ? s.host_veth : "");
}

}  // namespace mentat::hull
