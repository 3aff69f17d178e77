// Fast paths for the JSON text on the write path: parsing the JSON that programs send (with
// simdjson), and writing objects out. Both give exactly what nlohmann gives; the parser simply
// declines (nullopt) what it cannot give the same way, and the caller then uses nlohmann's.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "apis/object.h"

namespace mentat {

// Parses `text` if it is JSON nested at most `max_depth` deep with no key twice in one object,
// and gives the value nlohmann's parser gives, value types included. nullopt for anything else,
// valid or not, and for the few texts nlohmann reads differently or alone (a byte order mark,
// integers beyond 64 bits, a "-0" somewhere): the caller then parses with nlohmann.
std::optional<Json> ParseJsonFast(std::string_view text, int max_depth);

// Appends `j` as j.dump() writes it. Printable ASCII strings are copied in one step instead of
// character by character; everything else is left to nlohmann.
void AppendJson(const Json& j, std::string* out);

}  // namespace mentat
