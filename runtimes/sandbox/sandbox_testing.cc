#include "runtimes/sandbox/sandbox_testing.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

namespace mentat {

std::string BusyboxRoot() {
  namespace fs = std::filesystem;
  static std::string root = [] {
    const char* t = std::getenv("TEST_TMPDIR");
    std::string dir = std::string(t ? t : "/tmp") + "/busybox-root";
    fs::remove_all(dir);
    for (const char* d : {"bin", "etc", "tmp", "proc", "dev"}) fs::create_directories(dir + "/" + d);
    fs::permissions(dir + "/tmp", fs::perms::all | fs::perms::sticky_bit);
    fs::copy_file("/bin/busybox", dir + "/bin/busybox");
    FILE* list = popen("/bin/busybox --list", "r");
    char name[128];
    while (list && fgets(name, sizeof(name), list)) {
      std::string n(name);
      n.erase(n.find_last_not_of("\n") + 1);
      if (n.empty() || n == "busybox") continue;
      std::error_code ec;
      fs::create_symlink("busybox", dir + "/bin/" + n, ec);
    }
    if (list) pclose(list);
    std::ofstream(dir + "/etc/passwd") << "root:x:0:0:root:/:/bin/sh\n";
    std::ofstream(dir + "/etc/hostname") << "sandbox\n";
    return dir;
  }();
  return root;
}

void ExpectEscapeBatteryContained(const std::string& out) {
  std::set<std::string> probes;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("PROBE ", 0) != 0) continue;
    std::istringstream words(line.substr(6));
    std::string name, verdict;
    words >> name >> verdict;
    probes.insert(name);
    EXPECT_EQ(verdict, "contained") << line;
  }
  // Every attack the issue lists was tried.
  for (const char* p :
       {"see-host-pids", "see-host-pid-by-number", "signal-host-pid", "mount-tmpfs", "unshare-user",
        "unshare-mount", "clone-newuser", "setns", "chroot", "ptrace-attach-init", "ptrace-traceme",
        "init-module", "finit-module", "delete-module", "add-key", "keyctl", "bpf", "userfaultfd",
        "perf-event-open", "io-uring-setup", "kexec-load", "open-by-handle-at", "capabilities-now",
        "setuid-binary-ran", "write-proc-sys", "write-sysrq-trigger", "write-sys", "reach-host-file",
        "open-sda", "open-mem", "open-kmsg", "mknod-block-device", "dev-has-only-the-four",
        "dev-null-works"}) {
    EXPECT_TRUE(probes.count(p)) << "probe " << p << " did not run";
  }
  // The setuid-root copy ran with no capability at all.
  EXPECT_NE(out.find("euid=0 nocaps"), std::string::npos);
  EXPECT_EQ(out.find("HASCAPS"), std::string::npos);
  EXPECT_NE(out.find("DONE contained"), std::string::npos);
}

}  // namespace mentat
