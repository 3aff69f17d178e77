#include "apis/field_checker.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <regex>
#include <tuple>

#include "apis/service.h"

namespace mentat {

void FieldChecker::Fail(const std::string& path, const std::string& message) {
  Mark m = FindMark(marks_, path);
  errors_.push_back({path, m.line, m.column, message});
}

void FieldChecker::Adopt(const std::string& base, const FieldError& error) {
  errors_.push_back({base + error.field, error.line, error.column, error.message});
}

std::vector<FieldError> FieldChecker::TakeErrors() {
  std::stable_sort(errors_.begin(), errors_.end(), [](const FieldError& a, const FieldError& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  return std::move(errors_);
}

void FieldChecker::Unknown(const std::string& path, const std::string& key,
                           const std::vector<std::string>& known) {
  std::string hint = ClosestMatch(key, known);
  Fail(path, "unknown field" + (hint.empty() ? std::string() : ", did you mean \"" + hint + "\"?"));
}

void FieldChecker::OnlyKeys(const Json& m, const std::string& path,
                            const std::vector<std::string>& known) {
  for (auto it = m.begin(); it != m.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) == known.end()) {
      Unknown(path + "." + it.key(), it.key(), known);
    }
  }
}

std::optional<std::string> FieldChecker::Str(const Json& v, const std::string& path,
                                             bool allow_empty) {
  if (!v.is_string()) {
    Fail(path, "must be a string");
    return std::nullopt;
  }
  if (!allow_empty && v.get_ref<const std::string&>().empty()) {
    Fail(path, "must not be empty");
    return std::nullopt;
  }
  if (v.get_ref<const std::string&>().find('\0') != std::string::npos) {
    Fail(path, "contains a NUL byte, which no argument, environment or path can hold");
    return std::nullopt;
  }
  return v.get<std::string>();
}

std::optional<int64_t> FieldChecker::Int(const Json& v, const std::string& path, int64_t lo,
                                         int64_t hi) {
  if (!v.is_number_integer()) {
    Fail(path, "must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi));
    return std::nullopt;
  }
  int64_t n = v.get<int64_t>();
  if (n < lo || n > hi) {
    Fail(path, std::to_string(n) + " is out of range: must be from " + std::to_string(lo) +
                   " to " + std::to_string(hi));
    return std::nullopt;
  }
  return n;
}

std::optional<bool> FieldChecker::Bool(const Json& v, const std::string& path) {
  if (!v.is_boolean()) {
    Fail(path, "must be true or false");
    return std::nullopt;
  }
  return v.get<bool>();
}

std::optional<std::string> FieldChecker::AbsPath(const Json& v, const std::string& path) {
  auto s = Str(v, path);
  if (!s) return std::nullopt;
  if ((*s)[0] != '/') {
    Fail(path, "must be an absolute path, got \"" + *s + "\"");
    return std::nullopt;
  }
  if (HasDotDot(*s)) {
    Fail(path, "must not contain \"..\"");
    return std::nullopt;
  }
  if (s->find('\0') != std::string::npos) {
    Fail(path, "must not contain NUL");
    return std::nullopt;
  }
  return s;
}

std::optional<int64_t> FieldChecker::MemoryMb(const Json& v, const std::string& path) {
  const int64_t kMax = int64_t{1} << 20;  // 1 TiB
  if (v.is_number_integer()) return Int(v, path, 4, kMax);
  if (!v.is_string()) {
    Fail(path, "must be a quantity such as 256m, 1g or 512Mi");
    return std::nullopt;
  }
  static const std::regex re("^\\s*([0-9]+(\\.[0-9]+)?)\\s*([kKmMgGtT]?)([iI]?)([bB]?)\\s*$");
  std::smatch m;
  std::string s = v.get<std::string>();
  if (!std::regex_match(s, m, re)) {
    Fail(path, "\"" + s + "\" is not a memory quantity; use e.g. 256m, 1g or 512Mi");
    return std::nullopt;
  }
  double n = std::stod(m[1]);
  char unit = m[3].str().empty() ? 'm' : static_cast<char>(tolower(m[3].str()[0]));
  double mb = unit == 'k' ? n / 1024 : unit == 'm' ? n : unit == 'g' ? n * 1024 : n * 1024 * 1024;
  if (mb < 4 || mb > static_cast<double>(kMax)) {
    Fail(path, "\"" + s + "\" is out of range: memory must be from 4m to 1t");
    return std::nullopt;
  }
  return static_cast<int64_t>(std::llround(mb));
}

std::optional<int64_t> FieldChecker::CpuPercent(const Json& v, const std::string& path) {
  const double kMaxPercent = 100.0 * 1024;
  double percent = -1;
  if (v.is_number()) {
    percent = v.get<double>() * 100;  // cores
  } else if (v.is_string()) {
    std::string s = v.get<std::string>();
    static const std::regex re("^\\s*([0-9]+(\\.[0-9]+)?)\\s*(%|m)?\\s*$");
    std::smatch m;
    if (std::regex_match(s, m, re)) {
      double n = std::stod(m[1]);
      percent = m[3] == "%" ? n : m[3] == "m" ? n / 10 : n * 100;
    } else {
      Fail(path, "\"" + s + "\" is not a CPU quantity; use e.g. 50%, 0.5 (cores) or 500m");
      return std::nullopt;
    }
  } else {
    Fail(path, "must be a CPU quantity such as 50%, 0.5 (cores) or 500m");
    return std::nullopt;
  }
  if (percent < 1 || percent > kMaxPercent) {
    Fail(path, "CPU must be from 1% of a core to 1024 cores");
    return std::nullopt;
  }
  return static_cast<int64_t>(std::llround(percent));
}

std::optional<int64_t> FieldChecker::DurationMs(const Json& v, const std::string& path) {
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return v.get<int64_t>() * 1000;
  if (v.is_string()) {
    static const std::regex re("^([0-9]+)(ms|s|m|h)$");
    std::smatch m;
    std::string s = v.get<std::string>();
    if (std::regex_match(s, m, re)) {
      int64_t n = std::stoll(m[1]);
      const std::string u = m[2];
      int64_t mult = u == "ms" ? 1 : u == "s" ? 1000 : u == "m" ? 60000 : 3600000;
      if (n > 0 && n > (int64_t{1} << 40) / mult) {
        Fail(path, "duration too long");
        return std::nullopt;
      }
      return n * mult;
    }
  }
  Fail(path, "must be a duration such as 500ms, 10s, 5m or 1h");
  return std::nullopt;
}

std::string Shown(const std::string& s) {
  std::string out = "\"";
  for (char c : s.substr(0, 64)) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + (s.size() > 64 ? "...\"" : "\"");
}

std::string FormatDurationMs(int64_t ms) {
  if (ms == 0) return "0s";
  if (ms % 3600000 == 0) return std::to_string(ms / 3600000) + "h";
  if (ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::string JoinedWithAnd(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += i + 1 == items.size() ? " and " : ", ";
    out += items[i];
  }
  return out;
}

}  // namespace mentat
