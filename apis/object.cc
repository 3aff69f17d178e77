#include "apis/object.h"

#include <sys/random.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <ctime>
#include <random>

namespace mentat {

Result<std::chrono::milliseconds> ParseDuration(const std::string& text) {
  auto bad = [&] {
    return InvalidArgument("invalid duration \"" + text + "\": use e.g. 90s, 2m, 1h or 1m30s");
  };
  if (text.empty()) return bad();
  double total_ms = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
      ++i;
    if (i == start) return bad();
    double value;
    try {
      value = std::stod(text.substr(start, i - start));
    } catch (...) {
      return bad();
    }
    size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    std::string unit = text.substr(unit_start, i - unit_start);
    if (unit.empty() && unit_start == text.size() && start == 0) unit = "s";
    double scale = unit == "ms"  ? 1
                   : unit == "s" ? 1000
                   : unit == "m" ? 60000
                   : unit == "h" ? 3600000
                                 : -1;
    if (scale < 0) return bad();
    total_ms += value * scale;
  }
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(total_ms)));
}

std::string FormatDuration(std::chrono::milliseconds d) {
  int64_t ms = d.count();
  if (ms % 1000 != 0) {
    char buf[32];
    snprintf(buf, sizeof(buf), "%.1fs", ms / 1000.0);
    return buf;
  }
  int64_t s = ms / 1000;
  std::string out;
  if (s >= 3600) out += std::to_string(s / 3600) + "h", s %= 3600;
  if (s >= 60) out += std::to_string(s / 60) + "m", s %= 60;
  if (s > 0 || out.empty()) out += std::to_string(s) + "s";
  return out;
}


namespace {
const Json& Meta(const Json& obj) {
  static const Json empty = Json::object();
  if (!obj.is_object()) return empty;
  auto it = obj.find("metadata");
  return (it != obj.end() && it->is_object()) ? *it : empty;
}
}  // namespace

std::string NameOf(const Json& obj) {
  const Json& m = Meta(obj);
  auto it = m.find("name");
  return (it != m.end() && it->is_string()) ? it->get<std::string>() : "";
}

std::string NamespaceOf(const Json& obj) {
  const Json& m = Meta(obj);
  auto it = m.find("namespace");
  return (it != m.end() && it->is_string()) ? it->get<std::string>() : "";
}

int64_t ResourceVersionOf(const Json& obj) {
  const Json& m = Meta(obj);
  auto it = m.find("resourceVersion");
  if (it == m.end()) return 0;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    try {
      return std::stoll(it->get<std::string>());
    } catch (...) {
      return -1;
    }
  }
  return -1;
}

std::string LabelOf(const Json& obj, std::string_view label) {
  const Json& m = Meta(obj);
  auto labels = m.find("labels");
  if (labels == m.end() || !labels->is_object()) return "";
  auto it = labels->find(std::string(label));
  return (it != labels->end() && it->is_string()) ? it->get<std::string>() : "";
}

ObjectKey KeyOf(const Json& obj) {
  return {obj.value("kind", ""), NamespaceOf(obj), NameOf(obj)};
}

std::string FormatTime(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<std::chrono::system_clock::time_point> ParseTime(const std::string& s) {
  std::tm tm{};
  if (strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm) == nullptr) return std::nullopt;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::optional<int64_t> ParseRfc3339Millis(const std::string& s) {
  std::tm tm{};
  const char* rest = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr || s.size() < 19 || (s[10] != 'T' && s[10] != 't')) return std::nullopt;
  int64_t ms = static_cast<int64_t>(timegm(&tm)) * 1000;
  if (*rest == '.') {
    ++rest;
    int digits = 0, frac = 0;
    while (*rest >= '0' && *rest <= '9') {
      if (digits < 3) frac = frac * 10 + (*rest - '0');
      ++digits;
      ++rest;
    }
    if (digits == 0) return std::nullopt;
    for (int d = digits; d < 3; ++d) frac *= 10;
    ms += frac;
  }
  if (*rest == 'Z' || *rest == 'z') return rest[1] == '\0' ? std::optional<int64_t>(ms) : std::nullopt;
  int hh = 0, mm = 0;
  char sign = *rest;
  if ((sign != '+' && sign != '-') || std::sscanf(rest + 1, "%2d:%2d", &hh, &mm) != 2 ||
      std::strlen(rest) != 6 || hh > 23 || mm > 59) {
    return std::nullopt;
  }
  int64_t offset = (hh * 60 + mm) * 60000LL;
  return sign == '+' ? ms - offset : ms + offset;
}

std::string NowRfc3339() { return FormatTime(std::chrono::system_clock::now()); }

std::string HumanAge(std::chrono::system_clock::duration d) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  if (s < 0) s = 0;
  if (s < 120) return std::to_string(s) + "s";
  if (s < 2 * 3600) return std::to_string(s / 60) + "m";
  if (s < 2 * 86400) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

Json MakeCondition(const std::string& type, bool ok, const std::string& reason,
                   const std::string& message, int64_t observed_generation, const Json& previous) {
  std::string status = ok ? "True" : "False";
  std::string since = NowRfc3339();
  if (previous.is_array()) {
    for (const auto& c : previous) {
      if (c.is_object() && c.value("type", "") == type && c.value("status", "") == status) {
        since = c.value("lastTransitionTime", since);
      }
    }
  }
  return {{"type", type},       {"status", status},   {"reason", reason},
          {"message", message}, {"lastTransitionTime", since},
          {"observedGeneration", observed_generation}};
}

std::string ContentHash(const Json& obj) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : obj.dump()) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string NewUid() {
  // One getrandom(2) call: uids are minted under the store's write lock, where opening,
  // reading and closing /dev/urandom for each showed in profiles.
  unsigned char b[16];
  size_t got = 0;
  while (got < sizeof(b)) {
    ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  if (got < sizeof(b)) {
    std::random_device rd;
    for (auto& c : b) c = static_cast<unsigned char>(rd());
  }
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += digits[b[i] >> 4];
    out += digits[b[i] & 15];
  }
  return out;
}

Result<LabelSelector> LabelSelector::Parse(std::string_view text) {
  LabelSelector sel;
  size_t pos = 0;
  auto trim = [](std::string s) {
    auto b = s.find_first_not_of(' ');
    auto e = s.find_last_not_of(' ');
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  };
  while (pos <= text.size() && !text.empty()) {
    size_t comma = text.find(',', pos);
    std::string term = trim(std::string(text.substr(pos, comma == std::string_view::npos
                                                             ? std::string_view::npos
                                                             : comma - pos)));
    pos = (comma == std::string_view::npos) ? text.size() + 1 : comma + 1;
    if (term.empty()) return InvalidArgument("labelSelector: empty term in \"" + std::string(text) + "\"");
    Term t;
    if (auto ne = term.find("!="); ne != std::string::npos) {
      t = {trim(term.substr(0, ne)), Term::kNotEq, trim(term.substr(ne + 2))};
    } else if (auto eq = term.find("=="); eq != std::string::npos) {
      t = {trim(term.substr(0, eq)), Term::kEq, trim(term.substr(eq + 2))};
    } else if (auto eq1 = term.find('='); eq1 != std::string::npos) {
      t = {trim(term.substr(0, eq1)), Term::kEq, trim(term.substr(eq1 + 1))};
    } else if (term[0] == '!') {
      t = {trim(term.substr(1)), Term::kNotExists, ""};
    } else {
      t = {term, Term::kExists, ""};
    }
    if (t.key.empty()) return InvalidArgument("labelSelector: term \"" + term + "\" has no key");
    sel.terms_.push_back(std::move(t));
  }
  return sel;
}

bool LabelSelector::Matches(const Json& obj) const {
  const Json& m = Meta(obj);
  auto labels_it = m.find("labels");
  const Json empty = Json::object();
  const Json& labels = (labels_it != m.end() && labels_it->is_object()) ? *labels_it : empty;
  for (const auto& t : terms_) {
    auto it = labels.find(t.key);
    bool has = it != labels.end() && it->is_string();
    std::string value = has ? it->get<std::string>() : "";
    switch (t.op) {
      case Term::kEq:
        if (!has || value != t.value) return false;
        break;
      case Term::kNotEq:
        if (has && value == t.value) return false;
        break;
      case Term::kExists:
        if (!has) return false;
        break;
      case Term::kNotExists:
        if (has) return false;
        break;
    }
  }
  return true;
}

}  // namespace mentat
