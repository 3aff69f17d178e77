// The argv and envp a freshly forked or cloned child passes to execve, built in the parent:
// between fork and exec only async-signal-safe calls are allowed, so no allocation.
#pragma once

#include <string>
#include <vector>

#include "apis/service.h"

namespace mentat {

// A NULL-terminated array of C strings over strings it owns. Not copyable: the pointers are
// into its own strings (a move keeps them, as the strings' storage moves with the vector).
class ChildArgv {
 public:
  explicit ChildArgv(std::vector<std::string> strings) : strings_(std::move(strings)) {
    for (auto& s : strings_) ptrs_.push_back(s.data());
    ptrs_.push_back(nullptr);
  }
  ChildArgv(const ChildArgv&) = delete;
  ChildArgv& operator=(const ChildArgv&) = delete;
  ChildArgv(ChildArgv&&) = default;

  char* const* data() { return ptrs_.data(); }

 private:
  std::vector<std::string> strings_;
  std::vector<char*> ptrs_;
};

// "NAME=VALUE" strings of `env`, with a default PATH when it has none.
std::vector<std::string> EnvStrings(const std::vector<EnvVar>& env);

// `prefix` (e.g. the program) followed by `args`.
inline std::vector<std::string> Concat(std::vector<std::string> prefix,
                                       const std::vector<std::string>& args) {
  prefix.insert(prefix.end(), args.begin(), args.end());
  return prefix;
}

}  // namespace mentat
