// HullManifest::Parse: from the manifest's JSON text to a decoded manifest. nlohmann decides
// what the text means (strict JSON); the YAML decoder is consulted only for where each value is
// written (line:column in errors) and for duplicate keys, and only when the manifest has a
// problem to report. Decoding the fields is hull_manifest.cc's.
#include <set>
#include <string_view>

#include "apis/hull_manifest.h"

namespace mentat {
namespace {

// Prepares valid-or-not JSON text for DecodeYaml, which is used only for line:column marks.
// Outside strings: tabs become spaces (JSON allows tab indentation, YAML does not; one column
// each, so marks are unchanged) and nesting depth is bounded before any parser recurses. Inside
// strings: escaped UTF-16 surrogates, which yaml-cpp rejects, become U+FFFD (same width).
Result<std::string> PrepareForYaml(const std::string& text) {
  std::string out = text;
  bool in_string = false;
  int depth = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    char c = out[i];
    if (in_string) {
      if (c == '"') {
        in_string = false;
      } else if (c == '\\' && i + 1 < out.size()) {
        if (out[i + 1] == 'u' && i + 5 < out.size() && (out[i + 2] == 'd' || out[i + 2] == 'D') &&
            std::string_view("89abcdefABCDEF").find(out[i + 3]) != std::string_view::npos) {
          out.replace(i + 2, 4, "fffd");
        }
        ++i;  // skip the escaped character
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '\t':
        out[i] = ' ';
        break;
      case '{':
      case '[':
        if (++depth > kMaxManifestDepth) {
          Mark m = MarkOfOffset(text, i);
          return MakeError(
              Code::kInvalidArgument, "hull manifest is invalid",
              {{"", m.line, m.column,
                "nesting deeper than " + std::to_string(kMaxManifestDepth) + " levels"}});
        }
        break;
      case '}':
      case ']':
        --depth;
        break;
      default:
        break;
    }
  }
  return out;
}

// nlohmann's what() is "[json.exception.parse_error.101] parse error at line 3, column 10:
// syntax error ..."; the position goes in the FieldError, so keep only the explanation.
std::string SyntaxMessage(const std::string& what) {
  size_t column = what.find("column ");
  size_t colon = column == std::string::npos ? std::string::npos : what.find(": ", column);
  return colon == std::string::npos ? what : what.substr(colon + 2);
}

}  // namespace

Result<HullManifest> HullManifest::Parse(const std::string& json_text) {
  if (json_text.size() > kMaxManifestBytes) {
    return MakeError(Code::kTooLarge, "hull manifest is too large",
                     {{"", 0, 0,
                       std::to_string(json_text.size()) + " bytes; the limit is " +
                           std::to_string(kMaxManifestBytes) + " bytes"}});
  }
  // A linear scan that also bounds the nesting depth before any parser sees the text.
  MT_ASSIGN_OR_RETURN(std::string yaml_text, PrepareForYaml(json_text));
  // The manifest is plain JSON, so nlohmann decides what it means (strict syntax, JSON number
  // and string semantics); the YAML decoder only contributes where each value is written, for
  // error messages, and the refusal of duplicate keys, which nlohmann would silently collapse.
  // A valid manifest with no duplicate key never needs it: hull run's start is timed in
  // milliseconds, and the YAML pass is a good part of one.
  Json value;
  bool duplicate_key = false;
  std::vector<std::set<std::string>> keys;  // the keys seen in each open object
  Json::parser_callback_t track = [&](int /*depth*/, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == Json::parse_event_t::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (event == Json::parse_event_t::key && !keys.empty()) {
      if (!keys.back().insert(parsed.get<std::string>()).second) duplicate_key = true;
    }
    return true;
  };
  try {
    value = Json::parse(json_text, track);
  } catch (const Json::parse_error& e) {
    Mark m = MarkOfOffset(json_text, e.byte == 0 ? 0 : e.byte - 1);
    return MakeError(Code::kInvalidArgument, "hull manifest is not valid JSON",
                     {{"", m.line, m.column, SyntaxMessage(e.what())}});
  } catch (const Json::exception& e) {
    // out_of_range: a number too large for any JSON number type (found by the fuzzer).
    return MakeError(Code::kInvalidArgument, "hull manifest is not valid JSON",
                     {{"", 0, 0, SyntaxMessage(e.what())}});
  }
  if (!value.is_object()) {
    size_t first = json_text.find_first_not_of(" \t\r\n");
    return FromJson(value, {{"", MarkOfOffset(json_text, first == std::string::npos ? 0 : first)}});
  }
  if (!duplicate_key) {
    auto fast = FromJson(value, {});
    if (fast) return fast;
  }
  auto doc = DecodeYaml(yaml_text);
  if (!doc) {
    return MakeError(doc.error().code(), "hull manifest is invalid", doc.error().details());
  }
  return FromJson(value, doc->marks);
}

}  // namespace mentat
