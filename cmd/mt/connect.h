// Connecting mt to the server its configuration names (config.h): the client and its options,
// and the hints that later error messages give (where the server and the token came from).
#pragma once

#include <memory>

#include "apis/client.h"
#include "apis/error.h"
#include "cmd/mt/config.h"

namespace mentat::mt {

// The token and CA file of `cfg`, for this client and the extra ones a command makes.
ClientOptions ClientOptionsFor(const Config& cfg);

// Sets the auth and server hints (output.h) and makes the client. Its error names where the
// server (and the CA file) came from. A --ca-file given for a plain http:// server is warned of.
Result<std::unique_ptr<ApiClient>> Connect(const Config& cfg, const ClientOptions& co);

}  // namespace mentat::mt
