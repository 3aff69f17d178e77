#include "runtimes/hull/seccomp_audit.h"

#include <fcntl.h>
#include <poll.h>
#include <seccomp.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <thread>

namespace mentat::hull {
namespace {

// The value of ` key=` in an audit record ("pid=2614", "comm=\"sk\"").
std::optional<std::string> Field(const std::string& line, const std::string& key) {
  size_t at = 0;
  while ((at = line.find(key + "=", at)) != std::string::npos) {
    if (at == 0 || line[at - 1] == ' ' || line[at - 1] == ':') break;
    at += key.size();
  }
  if (at == std::string::npos) return std::nullopt;
  size_t begin = at + key.size() + 1;
  if (begin < line.size() && line[begin] == '"') {
    size_t end = line.find('"', begin + 1);
    return line.substr(begin + 1, end == std::string::npos ? std::string::npos : end - begin - 1);
  }
  size_t end = line.find(' ', begin);
  return line.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

}  // namespace

std::optional<SeccompKill> ParseSeccompRecord(const std::string& line, int64_t* session) {
  if (line.find("type=1326") == std::string::npos) return std::nullopt;
  auto sig = Field(line, "sig");
  auto nr = Field(line, "syscall");
  auto pid = Field(line, "pid");
  auto arch = Field(line, "arch");
  if (!sig || *sig != "31" || !nr || !pid) return std::nullopt;
  SeccompKill k;
  k.pid = static_cast<pid_t>(std::strtol(pid->c_str(), nullptr, 10));
  k.syscall = static_cast<int>(std::strtol(nr->c_str(), nullptr, 10));
  k.arch = arch ? static_cast<uint32_t>(std::strtoul(arch->c_str(), nullptr, 16)) : 0;
  k.comm = Field(line, "comm").value_or("");
  auto ses = Field(line, "ses");
  *session = ses ? std::strtoll(ses->c_str(), nullptr, 10) : -1;
  if (*session == 4294967295LL) *session = -1;  // AUDIT_SID_UNSET
  // SCMP_ARCH_* values are the kernel's AUDIT_ARCH_* values.
  char* name = seccomp_syscall_resolve_num_arch(k.arch ? k.arch : SCMP_ARCH_NATIVE, k.syscall);
  if (name) {
    k.name = name;
    std::free(name);
  }
  return k;
}

std::optional<SeccompKill> FindSeccompKill(int64_t session, pid_t pid, const std::string& kmsg_path) {
  return AwaitSeccompKill(session, pid, std::chrono::milliseconds(0), kmsg_path);
}

std::optional<SeccompKill> AwaitSeccompKill(int64_t session, pid_t pid,
                                            std::chrono::milliseconds wait,
                                            const std::string& kmsg_path) {
  int fd = ::open(kmsg_path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  const auto deadline = std::chrono::steady_clock::now() + wait;
  std::optional<SeccompKill> found;
  char buf[8192];
  std::string pending;
  for (;;) {
    // /dev/kmsg hands out one record per read; EPIPE: records were overwritten, read on.
    ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
    if (n < 0 && (errno == EPIPE || errno == EINTR)) continue;
    if (n > 0) {
      // A record ends with a newline (a plain file in tests holds many per read): whole lines.
      pending.append(buf, static_cast<size_t>(n));
      size_t start = 0;
      for (size_t end; (end = pending.find('\n', start)) != std::string::npos; start = end + 1) {
        int64_t ses = -1;
        auto k = ParseSeccompRecord(pending.substr(start, end - start), &ses);
        if (!k) continue;
        if ((session > 0 && ses == session) || (session <= 0 && pid > 0 && k->pid == pid)) found = k;
      }
      pending.erase(0, start);
      continue;
    }
    // Caught up with the log.
    auto now = std::chrono::steady_clock::now();
    if (found || now >= deadline) break;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    if (n < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(left.count()));
    } else {
      // A plain file at its end: it may yet grow.
      std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(20)));
    }
  }
  ::close(fd);
  return found;
}

}  // namespace mentat::hull
