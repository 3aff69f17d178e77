// Helpers that several areas of the API server's routes share (api_helpers.h).
#include "apis/server/api_helpers.h"

#include <utility>
#include <vector>

#include "apis/server/authorization.h"
#include "apis/service.h"

namespace mentat {

void SendError(HttpResponse& res, const Error& e) {
  res.status = e.HttpStatus();
  res.body = e.ToJson().dump() + "\n";
  res.content_type = "application/json";
}

void SendJson(HttpResponse& res, int status, const Json& j) {
  res.status = status;
  res.body = j.dump() + "\n";
  res.content_type = "application/json";
}

Result<KindInfo> KindOf(const std::string& plural) {
  auto k = KindByPlural(plural);
  if (!k) {
    std::vector<std::string> plurals;
    for (const auto& info : Kinds()) plurals.emplace_back(info.plural);
    std::string hint = ClosestMatch(plural, plurals);
    return MakeError(Code::kNotFound, "no resource type \"" + plural + "\"" +
                                          (hint.empty() ? "" : "; did you mean \"" + hint + "\"?"));
  }
  return *k;
}

// ?namespace=, when given, is a DNS label on every route (it names a place in the store and in
// the nodes' task directories: "../x", "a/b" or a newline must never reach either).
Status CheckNamespaceParam(const HttpRequest& req) {
  if (!req.HasParam("namespace")) return {};
  const std::string ns = req.Param("namespace");
  if (ns.empty() || IsDnsLabel(ns)) return {};
  std::string shown;
  for (char c : ns.substr(0, 64)) shown += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  return MakeError(Code::kInvalidArgument, "invalid namespace",
                   {{"namespace", 0, 0,
                     "must be a DNS label (1-63 lowercase letters, digits or '-', starting and "
                     "ending with a letter or digit), got \"" + shown +
                         (ns.size() > 64 ? "..." : "") + "\""}});
}

std::string NamespaceParam(const HttpRequest& req, const KindInfo& kind) {
  if (!kind.namespaced) return "";
  std::string ns = req.Param("namespace");
  return ns.empty() ? std::string(kDefaultNamespace) : ns;
}

Result<std::optional<LabelSelector>> SelectorParam(const std::string& text) {
  if (text.empty()) return std::optional<LabelSelector>();
  MT_ASSIGN_OR_RETURN(auto sel, LabelSelector::Parse(text));
  return std::optional<LabelSelector>(std::move(sel));
}

bool DryRun(const HttpRequest& req) {
  std::string v = req.Param("dryRun");
  return v == "true" || v == "All" || v == "server";
}

Result<bool> LocalReadParam(const HttpRequest& req) {
  const std::string v = req.Param("consistency");
  if (v.empty() || v == "linearizable") return false;
  if (v == "local") return true;
  return InvalidArgument("consistency: must be linearizable (the default) or local, got \"" + v + "\"");
}

Result<int64_t> ParseRevision(const std::string& s, const std::string& field) {
  if (s.empty()) return 0;
  try {
    size_t pos = 0;
    int64_t v = std::stoll(s, &pos);
    if (pos == s.size() && v >= 0) return v;
  } catch (...) {
  }
  return MakeError(Code::kInvalidArgument, "invalid " + field,
                   {{field, 0, 0, "must be a non-negative integer, got \"" + s + "\""}});
}

// May `who` create, update or delete this object (its spec)?
Status CanWrite(const Principal& who, const std::string& kind, const std::string& name,
                bool deleting) {
  if (who.role == Role::kAdmin) return {};
  std::string action = (deleting ? "delete " : "write ") + kind + " objects";
  const KindInfo* info = KindNamed(kind);
  const bool operator_writes = info && info->operator_writes;
  if (who.role == Role::kOperator) {
    if (operator_writes) return {};
    return Forbidden(who, action, "the admin role");
  }
  if (who.role == Role::kNode && kind == "Node" && name == who.node && !deleting) return {};
  // An agent reports Events; the PUT handler checks they are about its own node's objects.
  if (who.role == Role::kNode && kind == "Event" && !deleting) return {};
  if (who.role == Role::kNode && kind == "Node") {
    return Forbidden(who, (deleting ? "delete node " : "write node ") + name,
                     deleting ? "the admin role" : "node " + name + "'s own token, or the admin role");
  }
  return Forbidden(who, action, operator_writes ? "the operator or admin role" : "the admin role");
}

}  // namespace mentat
