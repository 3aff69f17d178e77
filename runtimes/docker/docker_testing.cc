#include "runtimes/docker/docker_testing.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>

namespace mentat {

std::string RunShell(const std::string& command, int* status) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int rc = pclose(p);
  if (status) *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return out;
}

Status EnsureDockerd() {
  static std::once_flag once;
  static Status result;
  std::call_once(once, [] {
    const char* srcdir = std::getenv("TEST_SRCDIR");
    const char* ws = std::getenv("TEST_WORKSPACE");
    std::string script = std::string(srcdir ? srcdir : ".") + "/" + (ws ? ws : "mentat") + "/scripts/dockerd.sh";
    if (!std::filesystem::exists(script)) script = "scripts/dockerd.sh";
    int status = 0;
    std::string out = RunShell(script + " 2>&1", &status);
    if (status != 0) result = Unavailable("dockerd is not usable: " + out);
  });
  return result;
}

}  // namespace mentat
