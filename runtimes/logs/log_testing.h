// For tests of what writes a task's logs (the relay, the drivers): the merged logs of a task
// directory as lines, and what a workload alternating between the streams should leave there.
#pragma once

#include <string>
#include <vector>

namespace mentat {

// Every line of `dir`'s merged logs (log_merge.h), as "stdout: text" or "stderr: text".
std::vector<std::string> MergedLines(const std::string& dir);

// "stdout: out0", "stderr: err0", "stdout: out1", ... up to out<n-1>, err<n-1>.
std::vector<std::string> AlternatingLines(int n);

}  // namespace mentat
