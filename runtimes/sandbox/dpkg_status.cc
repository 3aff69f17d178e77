#include "runtimes/sandbox/dpkg_status.h"

#include <fstream>
#include <set>

namespace mentat {

std::optional<std::map<std::string, std::string>> InstalledVersions(
    const std::vector<std::string>& packages, const std::string& status_path) {
  std::ifstream f(status_path);
  if (!f) return std::nullopt;
  std::set<std::string> wanted(packages.begin(), packages.end());
  std::map<std::string, std::string> found;
  // Stanzas separated by blank lines; only Package, Status and Version matter here.
  std::string package, status, version;
  auto end_stanza = [&] {
    if (wanted.count(package) && status == "install ok installed" && !found.count(package)) {
      found[package] = version;
    }
    package.clear();
    status.clear();
    version.clear();
  };
  for (std::string line; std::getline(f, line);) {
    if (line.empty()) {
      end_stanza();
    } else if (line.rfind("Package: ", 0) == 0) {
      package = line.substr(9);
    } else if (line.rfind("Status: ", 0) == 0) {
      status = line.substr(8);
    } else if (line.rfind("Version: ", 0) == 0) {
      version = line.substr(9);
    }
  }
  end_stanza();
  return found;
}

}  // namespace mentat
