#include "runtimes/agent/fingerprint.h"

#include <sys/statvfs.h>

#include <fstream>
#include <sstream>
#include <thread>

namespace mentat {
namespace {

// The first "key : value" line of a /proc file whose key is `key`, as a number.
double ProcField(const std::string& path, const std::string& key) {
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string k = line.substr(0, colon);
    while (!k.empty() && (k.back() == ' ' || k.back() == '\t')) k.pop_back();
    if (k != key) continue;
    std::istringstream value(line.substr(colon + 1));
    double v = 0;
    value >> v;
    return v;
  }
  return 0;
}

}  // namespace

Json HostCapacity(const std::string& data_dir) {
  Json cap = {{"cpus", std::thread::hardware_concurrency()}};
  double mhz = ProcField("/proc/cpuinfo", "cpu MHz");
  if (mhz <= 0) {
    std::ifstream max_freq("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq");
    double khz = 0;
    if (max_freq >> khz) mhz = khz / 1000;
  }
  if (mhz > 0) cap["cpu_mhz"] = static_cast<int64_t>(mhz);
  double mem_kb = ProcField("/proc/meminfo", "MemTotal");
  if (mem_kb > 0) cap["memory_mb"] = static_cast<int64_t>(mem_kb / 1024);
  struct statvfs vfs {};
  if (::statvfs(data_dir.c_str(), &vfs) == 0) {
    cap["disk_mb"] = static_cast<int64_t>(static_cast<double>(vfs.f_blocks) * vfs.f_frsize / (1 << 20));
  }
  return cap;
}

}  // namespace mentat
