// Standard base64 (RFC 4648, with padding), for bytes carried in JSON: exec output and input.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mentat {

std::string Base64Encode(std::string_view in);
// nullopt when `in` is not valid base64.
std::optional<std::string> Base64Decode(std::string_view in);

}  // namespace mentat
