// Fast paths for the JSON text on the write path: parsing the plain JSON that programs send,
// and writing objects out. Both give exactly what nlohmann gives; the parser simply declines
// (nullopt) anything outside its plain subset, and the caller then uses nlohmann's.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "apis/object.h"

namespace mentat {

// Parses `text` if it is plain JSON: objects, arrays, strings of printable ASCII without
// escapes, integers, true, false and null, nested at most `max_depth` deep, no key twice in
// one object. nullopt for anything else, valid or not.
std::optional<Json> ParsePlainJson(std::string_view text, int max_depth);

// Appends `j` as j.dump() writes it. Printable ASCII strings are copied in one step instead of
// character by character; everything else is left to nlohmann.
void AppendJson(const Json& j, std::string* out);

}  // namespace mentat
