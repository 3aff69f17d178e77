#include "runtimes/isolation/namespaces.h"

#include <sched.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>

namespace mentat {
namespace fs = std::filesystem;

int NamespacesToJoin(pid_t pid) {
  static const std::pair<const char*, int> kNamespaces[] = {
      {"mnt", CLONE_NEWNS},   {"uts", CLONE_NEWUTS},       {"ipc", CLONE_NEWIPC},  {"net", CLONE_NEWNET},
      {"pid", CLONE_NEWPID},  {"cgroup", CLONE_NEWCGROUP}, {"user", CLONE_NEWUSER}};
  int flags = 0;
  for (const auto& [ns, flag] : kNamespaces) {
    std::error_code e1, e2;
    auto theirs = fs::read_symlink("/proc/" + std::to_string(pid) + "/ns/" + ns, e1);
    auto ours = fs::read_symlink(std::string("/proc/self/ns/") + ns, e2);
    if (!e1 && !e2 && theirs != ours) flags |= flag;
  }
  return flags;
}

Json NamespaceInodes(pid_t pid, int* own_count) {
  Json ns = Json::object();
  int own = 0;
  std::error_code ec;
  const std::string proc = "/proc/" + std::to_string(pid);
  for (const auto& e : fs::directory_iterator(proc + "/ns", ec)) {
    std::string kind = e.path().filename().string();
    std::error_code e1, e2;
    std::string link = fs::read_symlink(e.path(), e1).string();  // "net:[4026532345]"
    std::string host = fs::read_symlink("/proc/self/ns/" + kind, e2).string();
    if (e1) continue;
    size_t open = link.find('[');
    uint64_t inum = open == std::string::npos ? 0 : std::strtoull(link.c_str() + open + 1, nullptr, 10);
    bool mine = e2 || link != host;
    if (mine && kind.find("_for_children") == std::string::npos) ++own;
    ns[kind] = {{"inode", inum}, {"own", mine}};
  }
  if (own_count) *own_count = own;
  return ns;
}

}  // namespace mentat
