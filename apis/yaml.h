// YAML <-> JSON for manifests. Decoding keeps the line:column of every value (a SourceMap keyed
// by dotted field path) so validation errors can point at the file, and refuses hostile input
// (alias bombs, deep nesting, oversized documents, duplicate keys, tabs, invalid UTF-8).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "apis/error.h"
#include "apis/object.h"

namespace mentat {

// Limits on one apply request / one file. Documented in docs/manifest-reference.md.
inline constexpr size_t kMaxManifestBytes = 1 << 20;  // 1 MiB
inline constexpr size_t kMaxManifestNodes = 100000;   // after alias expansion
inline constexpr int kMaxManifestDepth = 64;

struct Mark {
  int line = 0;  // 1-based
  int column = 0;
};

// Where byte `offset` of `text` is: 1-based line and column, the column counting bytes. An
// offset at or past the end is the position just after the last byte.
Mark MarkOfOffset(std::string_view text, size_t offset);

// Dotted path ("config.env[0]") -> where that value starts in the source.
using SourceMap = std::map<std::string, Mark>;

struct Document {
  std::string text;  // this document's own source text
  Json value;
  SourceMap marks;
  int first_line = 1;  // line of the document in its file, for multi-document files
};

// Splits and decodes every document of a YAML (or JSON) stream. Empty documents are skipped.
Result<std::vector<Document>> DecodeYamlStream(const std::string& text);
// Exactly one document.
Result<Document> DecodeYaml(const std::string& text);

// kInvalidArgument with the line:column of the first invalid UTF-8 sequence.
Status CheckUtf8(const std::string& text);

// JSON -> YAML text. Strings that would read back as another type are quoted.
std::string EncodeYaml(const Json& value);

// Looks up the mark for a path, falling back to its nearest ancestor.
Mark FindMark(const SourceMap& marks, const std::string& path);

}  // namespace mentat
