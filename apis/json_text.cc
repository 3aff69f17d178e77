#include "apis/json_text.h"

#include <charconv>
#include <cstdint>
#include <optional>

#include <simdjson.h>

namespace mentat {
namespace {

// Printable ASCII other than '"' and '\\': text nlohmann writes unchanged.
bool Plain(unsigned char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; }

// Builds the nlohmann value of simdjson's parsed `e`, or declines (false) where nlohmann would
// give something else or more than the caller allows: floating-point numbers (and integers
// beyond 64 bits, which simdjson rejects and nlohmann reads as floats), a key twice in one
// object (simdjson keeps both, nlohmann the last), nesting deeper than `max_depth`.
class FromSimdjson {
 public:
  FromSimdjson(std::string_view text, int max_depth) : text_(text), max_depth_(max_depth) {}

  bool Build(simdjson::dom::element e, Json* out, int depth) {
    using Type = simdjson::dom::element_type;
    switch (e.type()) {
      case Type::OBJECT:
        return ++depth <= max_depth_ && Object(simdjson::dom::object(e), out, depth);
      case Type::ARRAY:
        return ++depth <= max_depth_ && Array(simdjson::dom::array(e), out, depth);
      case Type::STRING:
        *out = std::string(std::string_view(e));
        return true;
      case Type::INT64:
        return Integer(int64_t(e), out);
      case Type::UINT64:
        *out = uint64_t(e);
        return true;
      case Type::BOOL:
        *out = bool(e);
        return true;
      case Type::DOUBLE:  // both round to the nearest double, as strtod does
        *out = double(e);
        return true;
      case Type::NULL_VALUE:
        *out = nullptr;
        return true;
    }
    return false;
  }

 private:
  bool Object(simdjson::dom::object object, Json* out, int depth) {
    *out = Json::object();
    auto& members = out->get_ref<Json::object_t&>();
    for (auto field : object) {
      Json value;
      if (!Build(field.value, &value, depth)) return false;
      if (!members.emplace(std::string(field.key), std::move(value)).second) return false;
    }
    return true;
  }

  bool Array(simdjson::dom::array array, Json* out, int depth) {
    *out = Json::array();
    auto& items = out->get_ref<Json::array_t&>();
    for (auto item : array) {
      items.emplace_back();
      if (!Build(item, &items.back(), depth)) return false;
    }
    return true;
  }

  // nlohmann keeps integers unsigned when non-negative and signed when negative, and "-0" as a
  // signed zero; simdjson's value does not say whether a zero was written "-0", so a zero in a
  // text holding "-0" anywhere is declined.
  bool Integer(int64_t v, Json* out) {
    if (v < 0) {
      *out = v;
    } else if (v == 0 && HasMinusZeroText()) {
      return false;
    } else {
      *out = static_cast<uint64_t>(v);
    }
    return true;
  }

  // Whether the text holds "-0" anywhere: looked for once per parse, at its first zero.
  bool HasMinusZeroText() {
    if (!minus_zero_) minus_zero_ = text_.find("-0") != std::string_view::npos;
    return *minus_zero_;
  }

  std::string_view text_;
  int max_depth_;
  std::optional<bool> minus_zero_;
};

// Documents up to this size are parsed with the calling thread's own parser, kept for the next
// call; larger ones (rare: manifests reach 1 MiB) with a parser freed right after.
constexpr size_t kKeptParserBytes = 64 << 10;

void AppendString(const std::string& s, const Json* node, std::string* out) {
  for (unsigned char c : s) {
    if (!Plain(c)) {
      *out += node ? node->dump() : Json(s).dump();
      return;
    }
  }
  *out += '"';
  *out += s;
  *out += '"';
}

template <class T>
void AppendInteger(T v, std::string* out) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, end);
}

}  // namespace

std::optional<Json> ParseJsonFast(std::string_view text, int max_depth) {
  thread_local simdjson::dom::parser kept;
  simdjson::dom::parser once;
  simdjson::dom::parser& parser = text.size() <= kKeptParserBytes ? kept : once;
  simdjson::dom::element root;
  if (parser.parse(text.data(), text.size()).get(root) != simdjson::SUCCESS) return std::nullopt;
  Json value;
  if (!FromSimdjson(text, max_depth).Build(root, &value, 0)) return std::nullopt;
  return value;
}

void AppendJson(const Json& j, std::string* out) {
  switch (j.type()) {
    case Json::value_t::object: {
      *out += '{';
      bool first = true;
      for (const auto& [key, value] : j.get_ref<const Json::object_t&>()) {
        if (!first) *out += ',';
        first = false;
        AppendString(key, nullptr, out);
        *out += ':';
        AppendJson(value, out);
      }
      *out += '}';
      return;
    }
    case Json::value_t::array: {
      *out += '[';
      bool first = true;
      for (const auto& value : j.get_ref<const Json::array_t&>()) {
        if (!first) *out += ',';
        first = false;
        AppendJson(value, out);
      }
      *out += ']';
      return;
    }
    case Json::value_t::string:
      return AppendString(j.get_ref<const std::string&>(), &j, out);
    case Json::value_t::number_integer:
      return AppendInteger(j.get<int64_t>(), out);
    case Json::value_t::number_unsigned:
      return AppendInteger(j.get<uint64_t>(), out);
    case Json::value_t::boolean:
      *out += j.get<bool>() ? "true" : "false";
      return;
    case Json::value_t::null:
      *out += "null";
      return;
    default:  // floats (nlohmann's shortest round-trip form), binary, discarded
      *out += j.dump();
      return;
  }
}

}  // namespace mentat
