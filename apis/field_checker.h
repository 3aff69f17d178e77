// The checks every kind's normalize, default and validate steps share: a problem is recorded
// with the line of the field it names (FieldError), and each scalar helper reports its own
// problem and returns nullopt, so one pass reports every problem of a manifest at once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "apis/error.h"
#include "apis/object.h"
#include "apis/yaml.h"

namespace mentat {

class FieldChecker {
 public:
  explicit FieldChecker(const SourceMap& marks) : marks_(marks) {}

  // Records a problem with the field at `path` ("spec.ports[1]"), at that field's line.
  void Fail(const std::string& path, const std::string& message);
  // Records a problem found by another checker, whose paths start at `base`.
  void Adopt(const std::string& base, const FieldError& error);
  // "unknown field", with the closest of `known` as a hint.
  void Unknown(const std::string& path, const std::string& key,
               const std::vector<std::string>& known);
  bool ok() const { return errors_.empty(); }
  // Errors in source order, as a reader goes through the file.
  std::vector<FieldError> TakeErrors();
  const SourceMap& marks() const { return marks_; }

  std::optional<std::string> Str(const Json& v, const std::string& path, bool allow_empty = false);
  std::optional<int64_t> Int(const Json& v, const std::string& path, int64_t lo, int64_t hi);
  std::optional<bool> Bool(const Json& v, const std::string& path);
  std::optional<std::string> AbsPath(const Json& v, const std::string& path);
  // Memory: "256m", "1g", "512Mi", "1Gi", "128M", "2048k"; a bare number means megabytes.
  std::optional<int64_t> MemoryMb(const Json& v, const std::string& path);
  // CPU as a percentage of one core: "50%", cores (0.5, 2, "1.5"), or millicores ("500m").
  std::optional<int64_t> CpuPercent(const Json& v, const std::string& path);
  // Durations: "10s", "500ms", "5m", "1h", or a number of seconds.
  std::optional<int64_t> DurationMs(const Json& v, const std::string& path);
  // Keys of the map `m` (at `path`) that are not among `known` are unknown fields.
  void OnlyKeys(const Json& m, const std::string& path, const std::vector<std::string>& known);

 private:
  const SourceMap& marks_;
  std::vector<FieldError> errors_;
};

// What a string shows of itself in an error: quoted, cut, control characters escaped.
std::string Shown(const std::string& s);

// A duration in the canonical form of a spec: "0s", "2h", "5m", "10s", "250ms".
std::string FormatDurationMs(int64_t ms);

// "a", "a and b", "a, b and c": for messages that list choices.
std::string JoinedWithAnd(const std::vector<std::string>& items);

}  // namespace mentat
