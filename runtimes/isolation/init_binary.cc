#include "runtimes/isolation/init_binary.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

namespace mentat {
namespace fs = std::filesystem;

std::string FindSandboxInit() {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("MENTAT_SANDBOX_INIT"); env && *env) candidates.push_back(env);
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back((exe.parent_path() / "sandbox-init").string());
    candidates.push_back((exe.parent_path().parent_path() / "sandbox-init" / "sandbox-init").string());
    candidates.push_back(exe.string() + ".runfiles/mentat/cmd/sandbox-init/sandbox-init");
    // A test binary: its runfiles hold the tree.
    if (const char* src = std::getenv("TEST_SRCDIR"); src && *src) {
      candidates.push_back(std::string(src) + "/mentat/cmd/sandbox-init/sandbox-init");
    }
  }
  candidates.push_back("/usr/lib/mentat/sandbox-init");
  for (const auto& c : candidates) {
    if (::access(c.c_str(), X_OK) == 0) return fs::weakly_canonical(c, ec).string();
  }
  return "";
}

}  // namespace mentat
