/* Escape attempts, run as a sandbox's or a hull container's workload. Each probe prints one line,
 *   PROBE <name> contained <why>    or    PROBE <name> ESCAPED <what happened>
 * and the test asserts every probe is contained. Static (musl), so it runs on any root.
 * Usage: escape-probe HOST_PID HOST_MARKER   (a pid and a file path that exist on the host) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

static int escaped = 0;

static void report(const char *name, int contained, const char *why) {
  printf("PROBE %s %s %s\n", name, contained ? "contained" : "ESCAPED", why);
  if (!contained) escaped = 1;
  fflush(stdout);
}

/* A syscall that must fail: contained when it returns -1. */
static void must_fail(const char *name, long rc) {
  char why[160];
  if (rc == -1) {
    snprintf(why, sizeof why, "(%s)", strerror(errno));
    report(name, 1, why);
  } else {
    snprintf(why, sizeof why, "(returned %ld)", rc);
    report(name, 0, why);
  }
}

static void caps_line(const char *field, char *out, size_t n) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  out[0] = 0;
  while (f && fgets(line, sizeof line, f)) {
    if (!strncmp(line, field, strlen(field))) {
      snprintf(out, n, "%s", line + strlen(field) + 1);
      out[strcspn(out, "\n")] = 0;
      while (*out == ' ' || *out == '\t') memmove(out, out + 1, strlen(out));
    }
  }
  if (f) fclose(f);
}

static int all_caps_zero(char *why, size_t n) {
  const char *fields[] = {"CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"};
  why[0] = 0;
  int zero = 1;
  for (int i = 0; i < 5; i++) {
    char v[64];
    caps_line(fields[i], v, sizeof v);
    size_t len = strlen(why);
    snprintf(why + len, n - len, "%s%s", fields[i], v);
    if (strcmp(v, "0000000000000000") != 0) zero = 0;
  }
  return zero;
}

/* Each syscall probe runs in a child of its own: under an allowlist that kills the process on
 * a forbidden call (hull's profiles, SECCOMP_RET_KILL_PROCESS) the child dies of SIGSYS, which
 * is containment, and the battery goes on. Under a deny list (the sandbox) it returns -1. */
static int probe_in_child(const char *name) {
  fflush(stdout);
  pid_t c = fork();
  if (c == 0) return 1;
  int status = 0;
  if (c < 0 || waitpid(c, &status, 0) < 0) {
    report(name, 0, "(could not fork the probe)");
  } else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS) {
    report(name, 1, "(killed by seccomp: SIGSYS)");
  } else if (WIFSIGNALED(status)) {
    char why[64];
    snprintf(why, sizeof why, "(the probe died of signal %d)", WTERMSIG(status));
    report(name, 0, why);
  } else if (WEXITSTATUS(status) != 0) {
    escaped = 1; /* the child printed its ESCAPED line */
  }
  return 0;
}

#define MUST_FAIL(name, expr)            \
  do {                                   \
    if (probe_in_child(name)) {          \
      must_fail(name, (long)(expr));     \
      fflush(stdout);                    \
      _exit(escaped);                    \
    }                                    \
  } while (0)

int main(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "--caps")) { /* run as the setuid copy */
    char why[400];
    int zero = all_caps_zero(why, sizeof why);
    printf("euid=%d %s %s\n", (int)geteuid(), zero ? "nocaps" : "HASCAPS", why);
    return 0;
  }
  if (argc < 3) {
    fprintf(stderr, "usage: escape-probe HOST_PID HOST_MARKER\n");
    return 2;
  }
  int host_pid = atoi(argv[1]);
  const char *marker = argv[2];
  char why[512];

  /* 1. Host pids: neither visible in /proc nor signallable. */
  {
    DIR *d = opendir("/proc");
    int pids = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) pids += e->d_name[0] >= '0' && e->d_name[0] <= '9';
    if (d) closedir(d);
    snprintf(why, sizeof why, "(%d processes in /proc)", pids);
    report("see-host-pids", pids <= 4, why);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d", host_pid);
    struct stat st;
    int visible = host_pid > 4 && stat(path, &st) == 0;
    report("see-host-pid-by-number", !visible, visible ? "(/proc/<host pid> exists)" : "(no such pid)");
    if (host_pid > 4) MUST_FAIL("signal-host-pid", kill(host_pid, 0));
  }
  /* 2-3. mount, unshare, setns, chroot. */
  MUST_FAIL("mount-tmpfs", mount("tmpfs", "/tmp", "tmpfs", 0, NULL));
  MUST_FAIL("remount-root-rw", mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL));
  MUST_FAIL("unshare-user", unshare(CLONE_NEWUSER));
  MUST_FAIL("unshare-mount", unshare(CLONE_NEWNS));
  MUST_FAIL("clone-newuser", syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
  MUST_FAIL("chroot", chroot("/tmp"));
  {
    int fd = open("/proc/1/ns/mnt", O_RDONLY);
    MUST_FAIL("setns", fd < 0 ? (errno = EACCES, -1) : setns(fd, 0));
  }
  /* 4. ptrace: of init, and of oneself. */
  MUST_FAIL("ptrace-attach-init", ptrace(PTRACE_ATTACH, 1, 0, 0));
  MUST_FAIL("ptrace-traceme", ptrace(PTRACE_TRACEME, 0, 0, 0));
  MUST_FAIL("process-vm-readv", syscall(SYS_process_vm_readv, 1, 0, 0, 0, 0, 0));
  /* 5. Kernel modules. */
  MUST_FAIL("init-module", syscall(SYS_init_module, "", 0, ""));
  {
    int fd = open("/bin/escape-probe", O_RDONLY);
    MUST_FAIL("finit-module", syscall(SYS_finit_module, fd, "", 0));
  }
  MUST_FAIL("delete-module", syscall(SYS_delete_module, "ext4", 0));
  /* 6-7. keyrings, bpf, userfaultfd, perf, io_uring, kexec. */
  MUST_FAIL("add-key", syscall(SYS_add_key, "user", "escape", "x", 1, -4 /*KEY_SPEC_PROCESS_KEYRING*/));
  MUST_FAIL("keyctl", syscall(SYS_keyctl, 0 /*KEYCTL_GET_KEYRING_ID*/, -4, 0));
  MUST_FAIL("bpf", syscall(SYS_bpf, 5 /*BPF_PROG_LOAD*/, NULL, 0));
  MUST_FAIL("userfaultfd", syscall(SYS_userfaultfd, 0));
  MUST_FAIL("perf-event-open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
  MUST_FAIL("io-uring-setup", syscall(425 /*io_uring_setup*/, 1, NULL));
  MUST_FAIL("kexec-load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
  MUST_FAIL("open-by-handle-at", syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, 0));
  /* 8. Capabilities: none now, none through a setuid-root binary. */
  {
    int zero = all_caps_zero(why, sizeof why);
    report("capabilities-now", zero, why);
    pid_t c = fork();
    if (c == 0) {
      execl("/bin/suid-probe", "suid-probe", "--caps", (char *)NULL);
      _exit(127);
    }
    int status = 0;
    waitpid(c, &status, 0);
    /* Its output goes to stdout; the test reads the line "euid=... nocaps ...". */
    report("setuid-binary-ran", WIFEXITED(status) && WEXITSTATUS(status) == 0, "(see the euid line)");
  }
  /* 9. Writing outside the root or to the kernel's knobs. */
  {
    int fd = open("/proc/sys/kernel/hostname", O_WRONLY);
    MUST_FAIL("write-proc-sys", fd < 0 ? -1 : write(fd, "pwned\n", 6));
    fd = open("/proc/sysrq-trigger", O_WRONLY);
    MUST_FAIL("write-sysrq-trigger", fd < 0 ? -1 : write(fd, "h", 1));
    fd = open("/sys/kernel/uevent_helper", O_WRONLY);
    MUST_FAIL("write-sys", fd < 0 ? -1 : 0);
    /* The host's marker file, by absolute path and through ../ */
    char up[600];
    snprintf(up, sizeof up, "/../../../..%s", marker);
    struct stat st;
    MUST_FAIL("reach-host-file", stat(marker, &st) == 0 || stat(up, &st) == 0 ? 0 : -1);
    MUST_FAIL("reach-host-root-via-proc", stat("/proc/1/root/../../..//proc/1/root/etc/host-marker-none", &st));
    fd = open("/proc/self/root/../../../../etc/escape-written", O_WRONLY | O_CREAT, 0644);
    /* That lands inside the sandbox's own /etc at most: the test checks the host's /etc. */
    if (fd >= 0) close(fd);
    report("write-via-proc-root", 1, "(checked by the test on the host)");
  }
  /* 10. Devices: only the four. */
  {
    const char *others[] = {"/dev/sda", "/dev/mem", "/dev/kmsg", "/dev/tty", "/dev/console", "/dev/vda", "/dev/kvm"};
    for (size_t i = 0; i < sizeof others / sizeof *others; i++) {
      char name[64];
      snprintf(name, sizeof name, "open-%s", others[i] + 5);
      MUST_FAIL(name, open(others[i], O_RDONLY));
    }
    MUST_FAIL("mknod-block-device", mknod("/tmp/sda", S_IFBLK | 0600, makedev(8, 0)));
    MUST_FAIL("mknod-mem", mknod("/tmp/mem", S_IFCHR | 0600, makedev(1, 1)));
    DIR *d = opendir("/dev");
    struct dirent *e;
    char list[512] = "";
    int extra = 0;
    while (d && (e = readdir(d))) {
      const char *n = e->d_name;
      if (!strcmp(n, ".") || !strcmp(n, "..")) continue;
      strncat(list, n, sizeof list - strlen(list) - 2);
      strcat(list, " ");
      if (strcmp(n, "null") && strcmp(n, "zero") && strcmp(n, "random") && strcmp(n, "urandom") &&
          strcmp(n, "shm") && strcmp(n, "fd") && strcmp(n, "stdin") && strcmp(n, "stdout") && strcmp(n, "stderr")) {
        extra = 1;
      }
    }
    if (d) closedir(d);
    report("dev-has-only-the-four", !extra, list);
    int ok = open("/dev/null", O_WRONLY);
    report("dev-null-works", ok >= 0, ok >= 0 ? "(opened)" : strerror(errno));
  }
  printf("DONE %s\n", escaped ? "escaped" : "contained");
  return escaped;
}
