#include "runtimes/sandbox/captured_command.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mentat {

Result<CapturedOutput> RunCaptured(const std::vector<std::string>& argv, const CaptureOptions& o) {
  if (argv.empty()) return InvalidArgument("no command to run");
  // Everything the child touches is built before fork: between fork and exec it may only make
  // async-signal-safe calls (the agent is multi-threaded).
  std::vector<char*> cargv, cenv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (const auto& e : o.env) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);
  const char* root = o.chroot_dir.empty() ? nullptr : o.chroot_dir.c_str();
  std::string proc_dir = o.chroot_dir + "/proc";
  const char* proc = root && o.mount_proc ? proc_dir.c_str() : nullptr;

  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) < 0) return ErrnoError("pipe", errno);
  if (pipe2(err, O_CLOEXEC) < 0) {
    int e = errno;
    close(out[0]);
    close(out[1]);
    return ErrnoError("pipe", e);
  }
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    for (int fd : {out[0], out[1], err[0], err[1]}) close(fd);
    return ErrnoError("fork", e);
  }
  if (pid == 0) {
    // The child's errno before exec goes back through `err`; a successful exec closes it.
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0) dup2(null, 0);
    dup2(out[1], 1);
    dup2(out[1], 2);
    int e = 0;
    if (proc && (unshare(CLONE_NEWNS) < 0 ||
                 mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0 ||
                 mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0)) {
      e = errno;
      (void)!write(err[1], "c", 1);
    } else if (root && (chroot(root) < 0 || chdir("/") < 0)) {
      e = errno;
      (void)!write(err[1], "c", 1);
    } else {
      execve(cargv[0], cargv.data(), cenv.data());
      e = errno;
      (void)!write(err[1], "e", 1);
    }
    (void)!write(err[1], &e, sizeof(e));
    _exit(127);
  }
  close(out[1]);
  close(err[1]);

  CapturedOutput result;
  auto deadline = std::chrono::steady_clock::now() + o.timeout;
  bool timed_out = false;
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{out[0], POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;  // the deadline check above ends it
    ssize_t r = read(out[0], buf, sizeof(buf));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;  // EOF: the command (and whatever kept its output) is done
    size_t room = o.max_output - std::min(o.max_output, result.out.size());
    result.out.append(buf, std::min(room, static_cast<size_t>(r)));
  }
  close(out[0]);
  if (timed_out) kill(pid, SIGKILL);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  char stage = 0;
  int child_errno = 0;
  bool failed = read(err[0], &stage, 1) == 1 &&
                read(err[0], &child_errno, sizeof(child_errno)) == sizeof(child_errno);
  close(err[0]);
  if (failed && stage == 'c') {
    if (child_errno == EPERM) {
      return FailedPrecondition("chroot into " + o.chroot_dir + " is not permitted (needs root)");
    }
    return ErrnoError("entering " + o.chroot_dir, child_errno);
  }
  if (failed) return ErrnoError("running " + argv[0], child_errno);
  if (timed_out) {
    return Unavailable(argv[0] + " did not finish within " + std::to_string(o.timeout.count()) +
                       " ms");
  }
  result.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return result;
}

}  // namespace mentat
