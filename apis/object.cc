#include "apis/object.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <random>

namespace mentat {

const std::vector<KindInfo>& Kinds() {
  static const std::vector<KindInfo> kinds = {
      {"Service", "services", true},
      {"Allocation", "allocations", true},
      {"Node", "nodes", false},
      {"SecurityProfile", "securityprofiles", false},
      {"Event", "events", true},
  };
  return kinds;
}

std::optional<KindInfo> KindByPlural(std::string_view plural) {
  for (const auto& k : Kinds()) {
    if (k.plural == plural) return k;
  }
  return std::nullopt;
}

std::optional<KindInfo> KindByName(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  static const std::vector<std::pair<std::string_view, std::string_view>> aliases = {
      {"svc", "services"}, {"alloc", "allocations"}, {"allocs", "allocations"},
      {"no", "nodes"},     {"profile", "securityprofiles"}, {"profiles", "securityprofiles"},
  };
  for (const auto& [alias, plural] : aliases) {
    if (lower == alias) return KindByPlural(plural);
  }
  for (const auto& k : Kinds()) {
    std::string kind_lower(k.kind);
    std::transform(kind_lower.begin(), kind_lower.end(), kind_lower.begin(), ::tolower);
    if (lower == kind_lower || lower == k.plural) return k;
  }
  return std::nullopt;
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
