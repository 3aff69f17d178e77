#include "runtimes/helper_binary.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

namespace mentat {
namespace fs = std::filesystem;

std::string FindHelperBinary(const std::string& name, const char* env_var) {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv(env_var); env && *env) candidates.push_back(env);
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  const std::string in_tree = "/mentat/cmd/" + name + "/" + name;
  if (!ec) {
    candidates.push_back((exe.parent_path() / name).string());
    candidates.push_back((exe.parent_path().parent_path() / name / name).string());
    candidates.push_back(exe.string() + ".runfiles" + in_tree);
    // A test binary: its runfiles hold the tree.
    if (const char* src = std::getenv("TEST_SRCDIR"); src && *src) {
      candidates.push_back(std::string(src) + in_tree);
    }
  }
  candidates.push_back("/usr/lib/mentat/" + name);
  for (const auto& c : candidates) {
    if (::access(c.c_str(), X_OK) == 0) return fs::weakly_canonical(c, ec).string();
  }
  return "";
}

}  // namespace mentat
