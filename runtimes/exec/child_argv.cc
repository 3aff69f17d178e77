#include "runtimes/exec/child_argv.h"

namespace mentat {
namespace {

constexpr char kDefaultTaskPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

}  // namespace

std::vector<std::string> EnvStrings(const std::vector<EnvVar>& env) {
  std::vector<std::string> out;
  bool has_path = false;
  for (const auto& e : env) {
    out.push_back(e.name + "=" + e.value);
    has_path |= e.name == "PATH";
  }
  if (!has_path) out.push_back(std::string("PATH=") + kDefaultTaskPath);
  return out;
}

}  // namespace mentat
