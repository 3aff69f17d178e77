#include "runtimes/hull/gated_start.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <string>

#include "runtimes/hull/stop_point.h"

namespace mentat::hull {
namespace {

constexpr uid_t kRootlessId = 100000;

Status WriteProcFile(pid_t pid, const char* file, const std::string& text) {
  const std::string path = "/proc/" + std::to_string(pid) + "/" + file;
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("writing " + path, errno);
  ssize_t n = ::write(fd, text.data(), text.size());
  bool ok = n == static_cast<ssize_t>(text.size());
  int err = n < 0 ? errno : EIO;  // a short write leaves errno as it was
  ::close(fd);
  if (!ok) return ErrnoError("writing " + path + " (\"" + text.substr(0, text.size() - 1) + "\")", err);
  return {};
}

// The parent's half of the fork-pipe dance: setgroups, gid_map, uid_map of the blocked child.
Status WriteIdMaps(pid_t pid, const IdMapping& ids) {
  if (ids.deny_setgroups) MT_RETURN_IF_ERROR(WriteProcFile(pid, "setgroups", "deny\n"));
  MT_RETURN_IF_ERROR(WriteProcFile(pid, "gid_map", "0 " + std::to_string(ids.gid) + " 1\n"));
  return WriteProcFile(pid, "uid_map", "0 " + std::to_string(ids.uid) + " 1\n");
}

// Opens the gate: one byte. SIGPIPE is blocked around the write (the hull CLI does not ignore
// it): a child that died before the gate is EPIPE here, and its own error is then reported.
int OpenGate(int fd) {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  ssize_t n;
  do {
    n = ::write(fd, "1", 1);
  } while (n < 0 && errno == EINTR);
  int err = n == 1 ? 0 : (n < 0 ? errno : EIO);
  if (err == EPIPE && !sigismember(&old, SIGPIPE)) {
    // Consume the SIGPIPE this thread raised before unblocking it.
    const timespec zero{0, 0};
    while (::sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return err;
}

}  // namespace

IdMapping RootlessMapping() {
  if (::geteuid() != 0) return {::geteuid(), ::getegid(), true};
  auto id_from = [](const char* var) -> uint32_t {
    const char* v = std::getenv(var);
    if (!v || !*v) return kRootlessId;
    char* end = nullptr;
    unsigned long n = std::strtoul(v, &end, 10);
    return (*end == '\0' && n > 0 && n < 0xffffffffUL) ? static_cast<uint32_t>(n) : kRootlessId;
  };
  return {id_from("SUDO_UID"), id_from("SUDO_GID"), false};
}

Status PrepareGatedChild(const GatedChild& child, const std::function<Status()>& record, bool* veth_made,
                         const char** step) {
  Status prep;
  StopPoint("cloned");
  if (child.ids != nullptr) {
    *step = "mapping uid/gid 0 (user namespace)";
    prep = WriteIdMaps(child.pid, *child.ids);
  }
  if (prep && child.veth != nullptr) {
    *step = "attaching the container to the bridge";
    // A stale holder's veth was deleted when its lease was reclaimed; one that exists now is
    // not ours to delete: AttachVeth fails on EEXIST and says so.
    prep = AttachVeth(*child.veth);
    *veth_made = static_cast<bool>(prep);
    if (prep) StopPoint("attached");
  }
  if (prep) {
    *step = "recording PID 1";
    prep = record();
    if (prep) StopPoint("recorded");
  }
  if (prep) {
    *step = "releasing the child";
    if (int e = OpenGate(child.gate_wr); e != 0) prep = ErrnoError("writing the gate", e);
    if (prep) StopPoint("released");
  }
  ::close(child.gate_wr);
  return prep;
}

}  // namespace mentat::hull
