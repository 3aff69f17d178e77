#include "apis/yaml.h"

#include <cctype>
#include <cmath>
#include <regex>
#include <set>
#include <string_view>

#include <yaml-cpp/yaml.h>

namespace mentat {
namespace {

bool ValidUtf8(const std::string& s, size_t* bad_offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = p[i];
    size_t len = c < 0x80                          ? 1
                 : ((c & 0xe0) == 0xc0 && c >= 0xc2) ? 2
                 : (c & 0xf0) == 0xe0               ? 3
                 : ((c & 0xf8) == 0xf0 && c <= 0xf4) ? 4
                                                     : 0;
    bool ok = len != 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (p[i + k] & 0xc0) == 0x80;
    if (!ok) {
      *bad_offset = i;
      return false;
    }
    i += len;
  }
  return true;
}

// Resolves a plain (unquoted) scalar the way YAML 1.2's core schema does.
Json ResolvePlainScalar(const std::string& s) {
  static const std::regex int_re("^[-+]?[0-9]+$");
  static const std::regex float_re("^[-+]?([0-9]+\\.[0-9]*|\\.[0-9]+|[0-9]+)([eE][-+]?[0-9]+)?$");
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (std::regex_match(s, int_re)) {
    try {
      return std::stoll(s);
    } catch (...) {
      return s;  // out of range: keep the text; validation reports it
    }
  }
  if (std::regex_match(s, float_re)) {
    try {
      return std::stod(s);
    } catch (...) {
      return s;
    }
  }
  return s;
}

class Converter {
 public:
  explicit Converter(int line_offset) : line_offset_(line_offset) {}

  Result<Json> Convert(const YAML::Node& node, const std::string& path, int depth) {
    if (++nodes_ > kMaxManifestNodes) {
      return MakeError(Code::kInvalidArgument, "document too large",
                       {{path, 0, 0,
                         "more than " + std::to_string(kMaxManifestNodes) +
                             " values after expanding aliases (an alias bomb?)"}});
    }
    if (depth > kMaxManifestDepth) {
      return MakeError(Code::kInvalidArgument, "document nested too deeply",
                       {{path, Line(node), Col(node),
                         "nesting deeper than " + std::to_string(kMaxManifestDepth) + " levels"}});
    }
    marks_.emplace(path, Mark{Line(node), Col(node)});
    switch (node.Type()) {
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined:
        return Json(nullptr);
      case YAML::NodeType::Scalar:
        // yaml-cpp tags quoted scalars "!" and plain ones "?".
        if (node.Tag() == "!" || node.Tag() == "tag:yaml.org,2002:str") return Json(node.Scalar());
        return ResolvePlainScalar(node.Scalar());
      case YAML::NodeType::Sequence: {
        Json arr = Json::array();
        size_t i = 0;
        for (const auto& child : node) {
          MT_ASSIGN_OR_RETURN(Json v, Convert(child, path + "[" + std::to_string(i++) + "]",
                                              depth + 1));
          arr.push_back(std::move(v));
        }
        return arr;
      }
      case YAML::NodeType::Map: {
        Json obj = Json::object();
        for (const auto& kv : node) {
          if (!kv.first.IsScalar()) {
            return MakeError(Code::kInvalidArgument, "invalid document",
                             {{path, Line(kv.first), Col(kv.first), "map keys must be strings"}});
          }
          std::string key = kv.first.Scalar();
          std::string child_path = path.empty() ? key : path + "." + key;
          if (obj.contains(key)) {
            return MakeError(Code::kInvalidArgument, "invalid document",
                             {{child_path, Line(kv.first), Col(kv.first),
                               "duplicate key \"" + key + "\""}});
          }
          // A field's position is its key's: that is where "unknown field" should point.
          marks_.emplace(child_path, Mark{Line(kv.first), Col(kv.first)});
          MT_ASSIGN_OR_RETURN(Json v, Convert(kv.second, child_path, depth + 1));
          obj[key] = std::move(v);
        }
        return obj;
      }
    }
    return Json(nullptr);
  }

  SourceMap TakeMarks() { return std::move(marks_); }

 private:
  int Line(const YAML::Node& n) const { return n.Mark().line + 1 + line_offset_; }
  int Col(const YAML::Node& n) const { return n.Mark().column + 1; }

  int line_offset_;
  size_t nodes_ = 0;
  SourceMap marks_;
};

// Splits a stream at "---" lines, remembering where each document starts. yaml-cpp's LoadAll
// would do the split too, but it loses nothing we need and this keeps per-document errors.
struct RawDoc {
  std::string text;
  int first_line;  // 1-based
};

std::vector<RawDoc> SplitDocuments(const std::string& text) {
  std::vector<RawDoc> docs;
  RawDoc cur{"", 1};
  int line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    ++line_no;
    bool is_sep = line.rfind("---", 0) == 0 &&
                  (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r');
    if (is_sep) {
      docs.push_back(std::move(cur));
      cur = RawDoc{"", line_no + 1};
      // Content after "--- " on the same line belongs to the new document.
      std::string rest = line.size() > 4 ? line.substr(4) : "";
      if (rest.find_first_not_of(" \t\r") != std::string::npos) {
        cur.text = std::string(3, ' ') + " " + rest + "\n";
        cur.first_line = line_no;
      }
    } else if (line == "..." ) {
      // document end marker: ignore
    } else {
      cur.text += line;
      cur.text += '\n';
    }
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  docs.push_back(std::move(cur));
  return docs;
}

bool Blank(const std::string& text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    auto first = line.find_first_not_of(" \t\r");
    if (first != std::string::npos && line[first] != '#') return false;
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  return true;
}

// Block nesting (maps and lists by indentation, "- - -" on a line) deeper than the limit is
// refused before the parser recurses into it, naming the line: yaml-cpp's own guard says only
// "bad file". The depth is the number of open indentation levels, plus the "- " that open
// lists within a line. Lines of a block scalar (after "key: |" or ">") are text, not nesting.
Status CheckBlockNesting(const RawDoc& raw) {
  std::vector<size_t> open;  // the indentation of each open level
  size_t scalar_indent = std::string::npos;  // inside a block scalar opened at this indent
  size_t pos = 0;
  int line_no = raw.first_line;
  for (; pos < raw.text.size(); ++line_no) {
    size_t nl = raw.text.find('\n', pos);
    if (nl == std::string::npos) nl = raw.text.size();
    const std::string_view line(raw.text.data() + pos, nl - pos);
    pos = nl + 1;
    const size_t indent = line.find_first_not_of(' ');
    if (indent == std::string_view::npos || line[indent] == '#' || line[indent] == '\r') continue;
    if (scalar_indent != std::string::npos && indent > scalar_indent) continue;
    scalar_indent = std::string::npos;
    while (!open.empty() && open.back() >= indent) open.pop_back();
    open.push_back(indent);
    size_t depth = open.size();
    for (size_t i = indent; i + 1 < line.size() && line[i] == '-' && line[i + 1] == ' ';) {
      ++depth;
      i = line.find_first_not_of(' ', i + 1);
      if (i == std::string_view::npos) break;
    }
    if (depth > static_cast<size_t>(kMaxManifestDepth)) {
      return MakeError(Code::kInvalidArgument, "document nested too deeply",
                       {{"", line_no, static_cast<int>(indent + 1),
                         "nesting deeper than " + std::to_string(kMaxManifestDepth) + " levels"}});
    }
    const size_t last = line.find_last_not_of(" \r");
    const char tail = line[last];
    const char before = last > 0 ? line[last - 1] : ' ';
    const bool block_scalar = tail == '|' || tail == '>' ||
                              ((tail == '-' || tail == '+' || std::isdigit(static_cast<unsigned char>(tail))) &&
                               (before == '|' || before == '>'));
    if (block_scalar) scalar_indent = indent;
  }
  return {};
}

Result<Document> DecodeOne(const RawDoc& raw) {
  // YAML forbids tabs for indentation; yaml-cpp's message for it is obscure, so say it plainly.
  size_t pos = 0;
  int line_no = raw.first_line;
  while (pos < raw.text.size()) {
    size_t nl = raw.text.find('\n', pos);
    size_t end = nl == std::string::npos ? raw.text.size() : nl;
    size_t i = pos;
    while (i < end && raw.text[i] == ' ') ++i;
    if (i < end && raw.text[i] == '\t') {
      return MakeError(Code::kInvalidArgument, "invalid YAML",
                       {{"", line_no, static_cast<int>(i - pos + 1),
                         "tab character used for indentation; YAML allows spaces only"}});
    }
    ++line_no;
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  MT_RETURN_IF_ERROR(CheckBlockNesting(raw));
  // Flow nesting ([[[...]]]) deeper than the limit is refused before the parser recurses into
  // it; yaml-cpp's own guard only says "bad file".
  {
    int depth = 0, line = raw.first_line, col = 0;
    char quote = 0, prev = '\n';
    for (char c : raw.text) {
      ++col;
      if (c == '\n') {
        ++line;
        col = 0;
        // A comment, or a stray apostrophe in a plain scalar ("doesn't"), ends with its line.
        if (quote == '\'' || quote == '\n') quote = 0;
        prev = '\n';
        continue;
      }
      if (quote) {
        if (c == quote) quote = 0;
        prev = c;
        continue;
      }
      if (c == '"' || c == '\'') {
        quote = c;
      } else if (c == '[' || c == '{') {
        if (++depth > kMaxManifestDepth) {
          return MakeError(Code::kInvalidArgument, "document nested too deeply",
                           {{"", line, col,
                             "nesting deeper than " + std::to_string(kMaxManifestDepth) + " levels"}});
        }
      } else if ((c == ']' || c == '}') && depth > 0) {
        --depth;
      } else if (c == '#' && (prev == ' ' || prev == '\t' || prev == '\n')) {
        quote = '\n';  // a comment runs to the end of the line
      }
      prev = c;
    }
  }
  YAML::Node root;
  try {
    root = YAML::Load(raw.text);
  } catch (const YAML::Exception& e) {
    return MakeError(Code::kInvalidArgument, "invalid YAML",
                     {{"", e.mark.line + raw.first_line, e.mark.column + 1, e.msg}});
  }
  Converter conv(raw.first_line - 1);
  Result<Json> value = [&]() -> Result<Json> {
    try {
      return conv.Convert(root, "", 0);
    } catch (const YAML::Exception& e) {
      return MakeError(Code::kInvalidArgument, "invalid YAML",
                       {{"", e.mark.line + raw.first_line, e.mark.column + 1, e.msg}});
    }
  }();
  if (!value) return std::unexpected(value.error());
  return Document{raw.text, std::move(*value), conv.TakeMarks(), raw.first_line};
}

void EmitJson(YAML::Emitter& out, const Json& v) {
  switch (v.type()) {
    case Json::value_t::object:
      out << YAML::BeginMap;
      for (auto it = v.begin(); it != v.end(); ++it) {
        out << YAML::Key << it.key() << YAML::Value;
        EmitJson(out, it.value());
      }
      out << YAML::EndMap;
      break;
    case Json::value_t::array:
      out << YAML::BeginSeq;
      for (const auto& e : v) EmitJson(out, e);
      out << YAML::EndSeq;
      break;
    case Json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      Json resolved = ResolvePlainScalar(s);
      bool needs_quotes = !resolved.is_string() || s.find_first_of(":#{}[],&*!|>'\"%@`\n") != std::string::npos ||
                          s.front() == ' ' || s.back() == ' ' || s.front() == '-' || s.front() == '?';
      if (needs_quotes) out << YAML::DoubleQuoted;
      out << s;
      break;
    }
    case Json::value_t::boolean:
      out << (v.get<bool>() ? "true" : "false");
      break;
    case Json::value_t::null:
      out << YAML::Null;
      break;
    default:
      out << v.dump();
      break;
  }
}

}  // namespace

Mark MarkOfOffset(std::string_view text, size_t offset) {
  Mark m{1, 1};
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++m.line;
      m.column = 1;
    } else {
      ++m.column;
    }
  }
  return m;
}

Status CheckUtf8(const std::string& text) {
  size_t bad = 0;
  if (ValidUtf8(text, &bad)) return {};
  Mark m = MarkOfOffset(text, bad);
  return MakeError(Code::kInvalidArgument, "invalid manifest",
                   {{"", m.line, m.column, "invalid UTF-8 byte sequence"}});
}

Result<std::vector<Document>> DecodeYamlStream(const std::string& text) {
  if (text.size() > kMaxManifestBytes) {
    return MakeError(Code::kTooLarge, "manifest too large",
                     {{"", 0, 0,
                       std::to_string(text.size()) + " bytes; the limit is " +
                           std::to_string(kMaxManifestBytes) + " bytes"}});
  }
  size_t bad = 0;
  if (!ValidUtf8(text, &bad)) {
    Mark m = MarkOfOffset(text, bad);
    return MakeError(Code::kInvalidArgument, "invalid manifest",
                     {{"", m.line, m.column, "invalid UTF-8 byte sequence"}});
  }
  std::vector<Document> docs;
  for (const auto& raw : SplitDocuments(text)) {
    if (Blank(raw.text)) continue;
    MT_ASSIGN_OR_RETURN(Document d, DecodeOne(raw));
    if (d.value.is_null()) continue;
    docs.push_back(std::move(d));
  }
  return docs;
}

Result<Document> DecodeYaml(const std::string& text) {
  MT_ASSIGN_OR_RETURN(auto docs, DecodeYamlStream(text));
  if (docs.size() != 1) {
    return InvalidArgument("expected exactly one document, found " + std::to_string(docs.size()));
  }
  return std::move(docs[0]);
}

std::string EncodeYaml(const Json& value) {
  YAML::Emitter out;
  out.SetIndent(2);
  EmitJson(out, value);
  std::string s = out.c_str();
  if (s.empty() || s.back() != '\n') s += '\n';
  return s;
}

Mark FindMark(const SourceMap& marks, const std::string& path) {
  std::string p = path;
  while (true) {
    auto it = marks.find(p);
    if (it != marks.end()) return it->second;
    if (p.empty()) return {};
    size_t cut = p.find_last_of(".[");
    p = cut == std::string::npos ? "" : p.substr(0, cut);
  }
}

}  // namespace mentat
