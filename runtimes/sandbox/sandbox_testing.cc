#include "runtimes/sandbox/sandbox_testing.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

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

}  // namespace mentat
