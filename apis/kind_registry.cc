#include "apis/kind_registry.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace mentat {
namespace {

// Filled at static initialization, before main; read-only afterwards.
std::vector<KindInfo>& Registry() {
  static std::vector<KindInfo> kinds;
  return kinds;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), ::tolower);
  return out;
}

}  // namespace

std::string SpecDraft::PathOf(const std::string& field) const {
  auto it = source.find(field);
  return it != source.end() ? it->second : prefix + field;
}

KindRegistration::KindRegistration(const KindInfo& info) {
  auto& kinds = Registry();
  for (const auto& k : kinds) {
    if (k.kind == info.kind || k.plural == info.plural) std::abort();  // registered twice
  }
  auto at = std::upper_bound(kinds.begin(), kinds.end(), info,
                             [](const KindInfo& a, const KindInfo& b) { return a.rank < b.rank; });
  kinds.insert(at, info);
}

const std::vector<KindInfo>& Kinds() { return Registry(); }

std::optional<KindInfo> KindByPlural(std::string_view plural) {
  for (const auto& k : Kinds()) {
    if (k.plural == plural) return k;
  }
  return std::nullopt;
}

std::optional<KindInfo> KindByName(std::string_view name) {
  const std::string lower = Lower(name);
  for (const auto& k : Kinds()) {
    for (auto short_name : k.short_names) {
      if (lower == short_name) return k;
    }
  }
  for (const auto& k : Kinds()) {
    if (lower == Lower(k.kind) || lower == k.plural) return k;
  }
  return std::nullopt;
}

const KindInfo* KindNamed(std::string_view kind) {
  for (const auto& k : Kinds()) {
    if (k.kind == kind) return &k;
  }
  return nullptr;
}

const KindInfo& KindOfKindless() {
  for (const auto& k : Kinds()) {
    if (k.flat_form) return k;
  }
  std::abort();  // apis/kinds/service.cc registers it
}

std::vector<std::string> PrinterHeader(const KindInfo& kind, bool wide) {
  if (kind.columns.empty()) return {"NAME", "AGE"};
  std::vector<std::string> header;
  for (const auto& c : kind.columns) {
    if (wide || !c.wide) header.emplace_back(c.header);
  }
  return header;
}

std::vector<std::string> PrinterRow(const KindInfo& kind, const Json& object, bool wide) {
  if (kind.columns.empty()) return {NameOf(object), Age(object)};
  std::vector<std::string> row;
  for (const auto& c : kind.columns) {
    if (wide || !c.wide) row.push_back(c.value(object));
  }
  return row;
}

const Json& MapAt(const Json& object, const char* key) {
  static const Json empty = Json::object();
  if (!object.is_object()) return empty;
  auto it = object.find(key);
  return it != object.end() && it->is_object() ? *it : empty;
}

std::string AgeOf(const std::string& rfc3339) {
  auto t = ParseTime(rfc3339);
  if (!t) return "<unknown>";
  return HumanAge(std::chrono::system_clock::now() - *t);
}

std::string Age(const Json& object) {
  return AgeOf(object.value("metadata", Json::object()).value("creationTimestamp", ""));
}

}  // namespace mentat
