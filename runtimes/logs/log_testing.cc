#include "runtimes/logs/log_testing.h"

#include "runtimes/logs/log_merge.h"

namespace mentat {

std::vector<std::string> MergedLines(const std::string& dir) {
  LogCursor cursor;
  std::vector<std::string> out;
  for (const auto& l : ReadMerged(dir, cursor, {})) {
    out.push_back(std::string(LogStreamName(l.stream)) + ": " + l.content);
  }
  return out;
}

std::vector<std::string> AlternatingLines(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    out.push_back("stdout: out" + std::to_string(i));
    out.push_back("stderr: err" + std::to_string(i));
  }
  return out;
}

}  // namespace mentat
