#include "apis/json_text.h"

#include <charconv>
#include <cstdint>

namespace mentat {
namespace {

// Printable ASCII other than '"' and '\': text nlohmann reads and writes unchanged.
bool Plain(unsigned char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; }

class PlainParser {
 public:
  PlainParser(std::string_view text, int max_depth) : p_(text.data()), end_(p_ + text.size()),
                                                       max_depth_(max_depth) {}

  std::optional<Json> Parse() {
    Json value;
    if (!Value(&value, 0)) return std::nullopt;
    SkipSpace();
    if (p_ != end_) return std::nullopt;
    return value;
  }

 private:
  void SkipSpace() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }

  bool Literal(std::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) {
      return false;
    }
    p_ += word.size();
    return true;
  }

  bool String(std::string* out) {
    ++p_;  // the opening quote
    const char* start = p_;
    while (p_ < end_ && Plain(static_cast<unsigned char>(*p_))) ++p_;
    if (p_ == end_ || *p_ != '"') return false;  // an escape, a control or non-ASCII byte
    out->assign(start, p_);
    ++p_;
    return true;
  }

  // Integers as nlohmann keeps them: unsigned when non-negative, signed when negative. Leading
  // zeros, fractions, exponents, "-0" and anything near overflow are declined.
  bool Number(Json* out) {
    bool negative = *p_ == '-';
    if (negative) ++p_;
    const char* start = p_;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    size_t digits = static_cast<size_t>(p_ - start);
    if (digits == 0 || digits > 18 || (digits > 1 && *start == '0')) return false;
    if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) return false;
    uint64_t v = 0;
    std::from_chars(start, p_, v);
    if (negative) {
      if (v == 0) return false;
      *out = -static_cast<int64_t>(v);
    } else {
      *out = v;
    }
    return true;
  }

  bool Value(Json* out, int depth) {
    SkipSpace();
    if (p_ == end_) return false;
    switch (*p_) {
      case '{': {
        if (++depth > max_depth_) return false;
        ++p_;
        *out = Json::object();
        auto& object = out->get_ref<Json::object_t&>();
        SkipSpace();
        if (p_ < end_ && *p_ == '}') {
          ++p_;
          return true;
        }
        for (;;) {
          SkipSpace();
          std::string key;
          if (p_ == end_ || *p_ != '"' || !String(&key)) return false;
          SkipSpace();
          if (p_ == end_ || *p_ != ':') return false;
          ++p_;
          Json value;
          if (!Value(&value, depth)) return false;
          if (!object.emplace(std::move(key), std::move(value)).second) return false;  // twice
          SkipSpace();
          if (p_ == end_) return false;
          if (*p_ == '}') {
            ++p_;
            return true;
          }
          if (*p_ != ',') return false;
          ++p_;
        }
      }
      case '[': {
        if (++depth > max_depth_) return false;
        ++p_;
        *out = Json::array();
        auto& array = out->get_ref<Json::array_t&>();
        SkipSpace();
        if (p_ < end_ && *p_ == ']') {
          ++p_;
          return true;
        }
        for (;;) {
          array.emplace_back();
          if (!Value(&array.back(), depth)) return false;
          SkipSpace();
          if (p_ == end_) return false;
          if (*p_ == ']') {
            ++p_;
            return true;
          }
          if (*p_ != ',') return false;
          ++p_;
        }
      }
      case '"': {
        std::string s;
        if (!String(&s)) return false;
        *out = std::move(s);
        return true;
      }
      case 't':
        *out = true;
        return Literal("true");
      case 'f':
        *out = false;
        return Literal("false");
      case 'n':
        *out = nullptr;
        return Literal("null");
      default:
        return Number(out);
    }
  }

  const char* p_;
  const char* end_;
  int max_depth_;
};

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

std::optional<Json> ParsePlainJson(std::string_view text, int max_depth) {
  return PlainParser(text, max_depth).Parse();
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
