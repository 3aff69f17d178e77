// Helpers that several areas of the API server's routes share (routes_*.cc): JSON answers,
// the kind in a path, query parameters, and who may write an object. Internal to api_server.
#pragma once

#include <optional>
#include <string>

#include "apis/error.h"
#include "apis/kind_registry.h"
#include "apis/object.h"
#include "apis/server/auth.h"
#include "apis/server/http_server.h"

namespace mentat {

void SendError(HttpResponse& res, const Error& e);
void SendJson(HttpResponse& res, int status, const Json& j);

// The kind a path's plural names; NotFound with the closest match otherwise.
Result<KindInfo> KindOf(const std::string& plural);

// ?namespace=, when given, is a DNS label on every route (it names a place in the store and in
// the nodes' task directories: "../x", "a/b" or a newline must never reach either).
Status CheckNamespaceParam(const HttpRequest& req);

std::string NamespaceParam(const HttpRequest& req, const KindInfo& kind);
Result<std::optional<LabelSelector>> SelectorParam(const std::string& text);
bool DryRun(const HttpRequest& req);
// ?consistency=: "linearizable" (the default: a read sees every write acknowledged before it)
// or "local" (this server's own state, at once, even without a quorum; it may lag). True for
// local; InvalidArgument for anything else.
Result<bool> LocalReadParam(const HttpRequest& req);
Result<int64_t> ParseRevision(const std::string& s, const std::string& field);

// May `who` create, update or delete this object (its spec)?
Status CanWrite(const Principal& who, const std::string& kind, const std::string& name,
                bool deleting);

}  // namespace mentat
