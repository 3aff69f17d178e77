/* sandbox-init: PID 1 of a sandbox. It starts the workload, forwards signals to it, reaps every
 * process orphaned into the namespace, and exits with the workload's status.
 *
 *   sandbox-init [--status-fd N] [--exec-fd N] [--adopt PID --exec-error-fd N] -- PROGRAM [ARGS...]
 *
 * Contract (docs/sandbox.md, "sandbox-init"; the sandbox driver relies on it):
 * - All signals are blocked and read from a signalfd: PID 1 installs no handlers, so nothing
 *   runs asynchronously and no signal is lost between fork and the main loop.
 * - The child restores an empty mask and default dispositions, then execvp()s PROGRAM (a name
 *   without '/' is searched on $PATH). If that fails it prints "sandbox-init: PROGRAM: reason"
 *   and exits 127 (126 for EACCES).
 * - Every catchable signal except SIGCHLD is forwarded to the workload's pid.
 * - Every child is reaped. When the workload exits, sandbox-init exits with its code, or with
 *   128+N after a signal N. With --status-fd it first writes one line to that fd:
 *   {"exit_code":N} or {"signal":N}, and after a failed exec
 *   {"exit_code":127,"exec_error":"reason"}.
 * - With --exec-fd, that fd is closed as soon as the workload's exec succeeded; after a failed
 *   exec, only when sandbox-init exits, the status line written. Whoever holds the pipe's other
 *   end learns of the exec by EOF, without polling. The workload never inherits it.
 * - With --adopt, the workload was already started by whoever exec'd sandbox-init (hull's PID 1
 *   forks it before this exec, so the workload does not wait for it): PID is that child, and
 *   --exec-error-fd the read end of its close-on-exec pipe, which carries the exec's errno if
 *   it failed (the child then exits 127, or 126 for EACCES). sandbox-init prints the reason,
 *   as for its own child. Signals must already be blocked: those that came meanwhile, SIGCHLD
 *   included, wait in the queue.
 * - Usage errors exit 2 and write nothing to the status fd.
 * No malloc, no stdio: it is built static with musl and stays a few kilobytes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

static void write_all(int fd, const char* s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    s += w;
    n -= (size_t)w;
  }
}

/* A fixed buffer that is appended to; what does not fit is dropped. */
struct line {
  char buf[512];
  size_t len;
};

static void put(struct line* l, const char* s) {
  while (*s && l->len < sizeof(l->buf)) l->buf[l->len++] = *s++;
}

static void put_int(struct line* l, long v) {
  char tmp[24];
  int i = sizeof(tmp);
  unsigned long u = v < 0 ? -(unsigned long)v : (unsigned long)v;
  tmp[--i] = 0;
  do {
    tmp[--i] = (char)('0' + u % 10);
  } while ((u /= 10) && i > 1);
  if (v < 0) tmp[--i] = '-';
  put(l, tmp + i);
}

/* A JSON string body: strerror texts are plain ASCII, but escape defensively. */
static void put_json_escaped(struct line* l, const char* s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      char e[3] = {'\\', (char)c, 0};
      put(l, e);
    } else if (c >= 0x20 && c < 0x7f) {
      char e[2] = {(char)c, 0};
      put(l, e);
    }
  }
}

static int parse_fd(const char* s) {
  long v = 0;
  if (!*s) return -1;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    v = v * 10 + (*s - '0');
    if (v > 1 << 20) return -1;
  }
  return (int)v;
}

static int usage(const char* why) {
  struct line l = {.len = 0};
  put(&l, "sandbox-init: ");
  put(&l, why);
  put(&l, "\nusage: sandbox-init [--status-fd N] [--exec-fd N] [--adopt PID --exec-error-fd N] -- PROGRAM [ARGS...]\n");
  write_all(2, l.buf, l.len);
  return 2;
}

/* "sandbox-init: PROGRAM: reason" on stderr. */
static void report_exec_error(const char* program, int err) {
  struct line l = {.len = 0};
  put(&l, "sandbox-init: ");
  put(&l, program);
  put(&l, ": ");
  put(&l, strerror(err));
  put(&l, "\n");
  write_all(2, l.buf, l.len);
}

/* Runs in the child: a clean signal state for the workload, then exec. Only returns by exiting.
 * On failure the errno goes to `err_fd` (close-on-exec, so a successful exec closes it and the
 * parent reads EOF). */
static void exec_workload(char** argv, const sigset_t* none, int err_fd) {
  struct sigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < _NSIG; s++) {
    if (s != SIGKILL && s != SIGSTOP) sigaction(s, &dfl, 0); /* EINVAL for reserved: fine */
  }
  sigprocmask(SIG_SETMASK, none, 0);
  execvp(argv[0], argv);
  int err = errno;
  report_exec_error(argv[0], err);
  write_all(err_fd, (const char*)&err, sizeof(err));
  _exit(err == EACCES ? 126 : 127);
}

int main(int argc, char** argv) {
  int status_fd = -1, exec_fd = -1, adopt = -1, exec_error_fd = -1;
  static const char* const kOptions[] = {"--status-fd", "--exec-fd", "--adopt", "--exec-error-fd"};
  static const char* const kWhy[] = {"--status-fd needs a file descriptor number", "--exec-fd needs a file descriptor number",
                                     "--adopt needs a process id", "--exec-error-fd needs a file descriptor number"};
  int* const values[] = {&status_fd, &exec_fd, &adopt, &exec_error_fd};
  int i = 1;
  for (;;) {
    int which = -1;
    for (int k = 0; k < 4 && i < argc; k++) {
      if (strcmp(argv[i], kOptions[k]) == 0) which = k;
    }
    if (which < 0) break;
    if (i + 1 >= argc) return usage(kWhy[which]);
    int v = parse_fd(argv[i + 1]);
    if (v < 0 || (which == 2 && v == 0)) return usage(kWhy[which]);
    *values[which] = v;
    i += 2;
  }
  if ((adopt >= 0) != (exec_error_fd >= 0)) return usage("--adopt and --exec-error-fd go together");
  if (i >= argc || strcmp(argv[i], "--") != 0) return usage("expected -- before the program");
  i++;
  if (i >= argc) return usage("no program given");
  char** workload_argv = argv + i;

  /* The status fd is ours: the workload must not inherit it (nor be able to forge the line). */
  if (status_fd >= 0 && fcntl(status_fd, F_SETFD, FD_CLOEXEC) < 0) {
    return usage("--status-fd is not an open file descriptor");
  }
  if (exec_fd >= 0 && (exec_fd < 3 || exec_fd == status_fd)) {
    return usage("--exec-fd must be above 2 and differ from --status-fd");
  }
  if (exec_fd >= 0 && fcntl(exec_fd, F_SETFD, FD_CLOEXEC) < 0) {
    return usage("--exec-fd is not an open file descriptor");
  }

  /* Outside a PID namespace (tests, debugging) orphans still come to us. As PID 1 it is a
   * no-op. */
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

  /* Block everything before fork: a signal that arrives before the loop waits in the queue. */
  sigset_t all, none, original;
  sigfillset(&all);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &all, &original);
  int sfd = signalfd(-1, &all, SFD_CLOEXEC);
  if (sfd < 0) {
    write_all(2, "sandbox-init: signalfd failed\n", 30);
    return 127;
  }

  int errpipe[2] = {exec_error_fd, -1};
  pid_t child = adopt;
  if (adopt < 0) {
    if (pipe2(errpipe, O_CLOEXEC) < 0) {
      write_all(2, "sandbox-init: pipe failed\n", 26);
      return 127;
    }
    child = fork();
    if (child < 0) {
      write_all(2, "sandbox-init: fork failed\n", 26);
      return 127;
    }
    if (child == 0) {
      close(errpipe[0]);
      exec_workload(workload_argv, &none, errpipe[1]);
    }
    close(errpipe[1]);
  } else {
    if (exec_error_fd < 3 || exec_error_fd == status_fd || exec_error_fd == exec_fd) {
      return usage("--exec-error-fd must be above 2 and differ from --status-fd and --exec-fd");
    }
    if (fcntl(exec_error_fd, F_SETFD, FD_CLOEXEC) < 0) return usage("--exec-error-fd is not an open file descriptor");
    /* A process that exists and is not this one (a zombie counts). Only kill(2), which every
     * hull profile allows, not waitid. */
    if (adopt == getpid() || kill(adopt, 0) != 0) return usage("--adopt names no other process");
  }
  /* EOF: the exec succeeded. Blocking here is short: the child does nothing but exec. */
  int exec_err = 0;
  for (;;) {
    ssize_t n = read(errpipe[0], &exec_err, sizeof(exec_err));
    if (n < 0 && errno == EINTR) continue;
    if (n != (ssize_t)sizeof(exec_err)) exec_err = 0;
    break;
  }
  close(errpipe[0]);
  if (adopt >= 0 && exec_err != 0) {
    /* The adopted child could not print it (it had only its errno and the pipe). */
    report_exec_error(workload_argv[0], exec_err);
  }
  /* The workload runs: say so. After a failed exec the fd stays open until we exit, after the
   * status line is written, so whoever sees EOF finds the reason there. */
  if (exec_fd >= 0 && exec_err == 0) close(exec_fd);

  int code = -1, signo = 0;
  while (code < 0) {
    struct signalfd_siginfo si;
    ssize_t n = read(sfd, &si, sizeof(si));
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      write_all(2, "sandbox-init: reading signals failed\n", 37);
      kill(child, SIGKILL);
      code = 127;
      break;
    }
    if (n != (ssize_t)sizeof(si)) continue;
    if (si.ssi_signo != SIGCHLD) {
      kill(child, (int)si.ssi_signo);
      continue;
    }
    /* SIGCHLD coalesces: reap everything that is ready, ours and orphans alike. */
    for (;;) {
      int st;
      pid_t p = waitpid(-1, &st, WNOHANG);
      if (p < 0 && errno == EINTR) continue;
      if (p <= 0) break;
      if (p != child) continue;
      if (WIFEXITED(st)) {
        code = WEXITSTATUS(st);
      } else if (WIFSIGNALED(st)) {
        signo = WTERMSIG(st);
        code = 128 + signo;
      }
    }
  }

  if (status_fd >= 0) {
    struct line l = {.len = 0};
    if (signo) {
      put(&l, "{\"signal\":");
      put_int(&l, signo);
    } else {
      put(&l, "{\"exit_code\":");
      put_int(&l, code);
      if (exec_err) {
        put(&l, ",\"exec_error\":\"");
        put_json_escaped(&l, strerror(exec_err));
        put(&l, "\"");
      }
    }
    put(&l, "}\n");
    write_all(status_fd, l.buf, l.len);
  }
  /* Exiting kills what is left in the namespace (the kernel SIGKILLs it when PID 1 goes). */
  return code;
}
