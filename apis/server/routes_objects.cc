// The API server's object routes: list, get, put, status and delete of /v1/:kind objects (a
// list with ?watch=true is a watch: routes_watch.cc).
#include <algorithm>
#include <utility>

#include "apis/json_text.h"
#include "apis/server/api_helpers.h"
#include "apis/server/api_server.h"
#include "apis/service.h"
#include "apis/yaml.h"

namespace mentat {
namespace {

// Builds the DOM (nlohmann's own SAX DOM builder) while enforcing the YAML decoder's guards:
// no duplicate keys (nlohmann would keep the last silently) and no nesting deeper than
// kMaxManifestDepth.
class GuardedJsonSax {
 public:
  explicit GuardedJsonSax(Json& out) : dom_(out, /*allow_exceptions=*/false) {}
  bool null() { return dom_.null(); }
  bool boolean(bool v) { return dom_.boolean(v); }
  bool number_integer(Json::number_integer_t v) { return dom_.number_integer(v); }
  bool number_unsigned(Json::number_unsigned_t v) { return dom_.number_unsigned(v); }
  bool number_float(Json::number_float_t v, const std::string& s) { return dom_.number_float(v, s); }
  bool string(std::string& v) { return dom_.string(v); }
  bool binary(Json::binary_t& v) { return dom_.binary(v); }
  bool start_object(std::size_t n) {
    if (++depth_ > kMaxManifestDepth) return false;
    if (keys_.size() < depth_) keys_.resize(depth_);
    keys_[depth_ - 1].clear();
    return dom_.start_object(n);
  }
  bool key(std::string& k) {
    auto& seen = keys_[depth_ - 1];
    if (std::find(seen.begin(), seen.end(), k) != seen.end()) return false;
    seen.push_back(k);
    return dom_.key(k);
  }
  bool end_object() {
    --depth_;
    return dom_.end_object();
  }
  bool start_array(std::size_t n) {
    if (++depth_ > kMaxManifestDepth) return false;
    if (keys_.size() < depth_) keys_.resize(depth_);
    return dom_.start_array(n);
  }
  bool end_array() {
    --depth_;
    return dom_.end_array();
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    return false;
  }

 private:
  nlohmann::detail::json_sax_dom_parser<Json> dom_;
  size_t depth_ = 0;
  std::vector<std::vector<std::string>> keys_;  // per open object: the keys seen so far
};

// Parses a JSON body fast (simdjson, else nlohmann), but only if it passes the same
// guards as the YAML decoder. Anything else is left to the YAML decoder, which reports it with a
// line.
std::optional<Json> FastJson(const std::string& body) {
  if (body.empty() || body.front() != '{' || body.size() > kMaxManifestBytes) return std::nullopt;
  if (auto plain = ParseJsonFast(body, kMaxManifestDepth)) return plain;
  Json parsed;
  GuardedJsonSax sax(parsed);
  if (!Json::sax_parse(body, &sax) || !parsed.is_object()) return std::nullopt;
  return parsed;
}

}  // namespace

void ApiServer::ObjectRoutes() {
  // List, or watch with ?watch=true.
  Get("/v1/:kind", [this](const HttpRequest& req, HttpResponse& res, const Principal& who) {
    ListObjects(req, res, who);
  });
  Get("/v1/:kind/:name", [this](const HttpRequest& req, HttpResponse& res, const Principal& who) {
    GetObject(req, res, who);
  });
  Put("/v1/:kind/:name", [this](const HttpRequest& req, HttpResponse& res, const Principal& who) {
    PutObject(req, res, who);
  });
  Put("/v1/:kind/:name/status", [this](const HttpRequest& req, HttpResponse& res,
                                       const Principal& who) { PutStatus(req, res, who); });
  Delete("/v1/:kind/:name", [this](const HttpRequest& req, HttpResponse& res,
                                   const Principal& who) { DeleteObject(req, res, who); });
}

void ApiServer::ListObjects(const HttpRequest& req, HttpResponse& res, const Principal& who) {
  auto kind = KindOf(req.matches[0]);
  if (!kind) return SendError(res, kind.error());
  auto narrowed = node_auth_.ListSelector(who, std::string(kind->kind), req.Param("labelSelector"));
  if (!narrowed) return SendError(res, narrowed.error());
  auto sel = SelectorParam(*narrowed);
  if (!sel) return SendError(res, sel.error());
  std::string ns = req.HasParam("namespace") ? req.Param("namespace") : "";
  if (!kind->namespaced) ns.clear();
  std::string w = req.Param("watch");
  if (w == "true" || w == "1") return WatchObjects(req, res, *kind, *sel, ns);
  ListOptions lo;
  lo.ns = ns;
  lo.selector = *sel;
  auto local = LocalReadParam(req);
  if (!local) return SendError(res, local.error());
  lo.local = *local;
  auto limit = ParseRevision(req.Param("limit"), "limit");
  if (!limit) return SendError(res, limit.error());
  lo.limit = static_cast<size_t>(*limit);
  lo.continue_token = req.Param("continue");
  lo.raw = true;  // the stored JSON goes out as stored: no parse, no re-serialize
  auto list = store_->List(std::string(kind->kind), lo);
  if (!list) return SendError(res, list.error());
  std::string body = "{\"apiVersion\":\"" + std::string(kApiVersion) + "\",\"kind\":\"" +
                     std::string(kind->kind) + "List\",\"resourceVersion\":\"" +
                     std::to_string(list->revision) + "\",";
  if (!list->continue_token.empty()) body += "\"continue\":\"" + list->continue_token + "\",";
  size_t total = body.size() + 16;
  for (const auto& r : list->raw_items) total += r.size() + 1;
  body.reserve(total);
  body += "\"items\":[";
  for (size_t i = 0; i < list->raw_items.size(); ++i) {
    if (i) body += ',';
    body += list->raw_items[i];
  }
  body += "]}\n";
  res.status = 200;
  res.body = std::move(body);
}

void ApiServer::GetObject(const HttpRequest& req, HttpResponse& res, const Principal& who) {
  auto kind = KindOf(req.matches[0]);
  if (!kind) return SendError(res, kind.error());
  auto local = LocalReadParam(req);
  if (!local) return SendError(res, local.error());
  const ObjectKey key{std::string(kind->kind), NamespaceParam(req, *kind), req.matches[1]};
  auto obj = *local ? store_->GetLocal(key) : store_->Get(key);
  if (!obj) return SendError(res, obj.error());
  if (auto st = node_auth_.CanRead(who, *obj); !st) return SendError(res, st.error());
  SendJson(res, 200, *obj);
}

void ApiServer::PutObject(const HttpRequest& req, HttpResponse& res, const Principal& who) {
  auto kind = KindOf(req.matches[0]);
  if (!kind) return SendError(res, kind.error());
  std::string name = req.matches[1];
  if (auto st = CanWrite(who, std::string(kind->kind), name, false); !st) {
    return SendError(res, st.error());
  }
  auto body = DecodePutBody(req, *kind, name);
  if (!body) return SendError(res, body.error());
  auto obj = CheckPutObject(req, *kind, name, std::move(*body), who);
  if (!obj) return SendError(res, obj.error());
  WriteOptions wo;
  wo.dry_run = DryRun(req);
  wo.expected_revision = ResourceVersionOf(*obj);
  if (wo.expected_revision < 0) {
    return SendError(res, Error(Code::kInvalidArgument, "invalid metadata.resourceVersion"));
  }
  // A one-object transaction: it says whether it created the object (201) without a
  // second read, and honours metadata.resourceVersion as the precondition. The answer
  // waits for the fsync; this worker does not.
  std::vector<Json> puts;
  puts.push_back(std::move(*obj));
  store_->TxnAsync(puts, wo.dry_run, {},
                   [respond = res.Defer()](Result<std::vector<TxnResult>> written) {
                     HttpResponse out;
                     if (!written) {
                       SendError(out, written.error());
                       return respond(std::move(out));
                     }
                     auto& result = (*written)[0];
                     int status = result.action == TxnResult::kCreated ? 201 : 200;
                     if (result.json.empty()) {
                       SendJson(out, status, result.object);
                       return respond(std::move(out));
                     }
                     out.status = status;  // the stored text, not serialized a second time
                     out.body = std::move(result.json);
                     out.body += '\n';
                     respond(std::move(out));
                   });
}

// JSON from programs takes the fast path (nlohmann). YAML, and JSON that fails
// validation, goes through the YAML decoder, which knows the line of every field.
Result<ApiServer::PutBody> ApiServer::DecodePutBody(const HttpRequest& req, const KindInfo& kind,
                                                    const std::string& name) {
  // Normalizes and admits the document, noting what the handler needs to know of the input.
  auto normalize = [&](Document d) -> Result<PutBody> {
    PutBody in;
    if (d.value.is_object()) {
      if (!d.value.contains("kind") && !kind.flat_form && !IsProfilesDocument(d.value)) {
        d.value["kind"] = std::string(kind.kind);
      }
      in.has_metadata = d.value.contains("metadata");
      in.explicit_ns = d.value.contains("namespace") ||
                       (in.has_metadata && d.value["metadata"].is_object() &&
                        d.value["metadata"].contains("namespace"));
      // Placed before admission: a namespace's policy is chosen by it.
      if (kind.namespaced && req.HasParam("namespace")) DefaultNamespace(d.value, req.Param("namespace"));
    }
    MT_ASSIGN_OR_RETURN(in.objects, NormalizeAndAdmit(d, name));
    return in;
  };
  if (auto fast = FastJson(req.body)) {
    auto attempt = normalize(Document{"", std::move(*fast), {}, 1});
    if (attempt) return attempt;
  }
  MT_ASSIGN_OR_RETURN(auto doc, DecodeYaml(req.body));
  return normalize(std::move(doc));
}

// The one object a PUT body declares, checked against the path and the caller's rights.
Result<Json> ApiServer::CheckPutObject(const HttpRequest& req, const KindInfo& kind,
                                       const std::string& name, PutBody body,
                                       const Principal& who) {
  if (body.objects.size() != 1) {
    return MakeError(Code::kInvalidArgument,
                     "this document declares " + std::to_string(body.objects.size()) +
                         " objects; use POST /v1/apply (mt apply) for it");
  }
  Json obj = std::move(body.objects[0]);
  if (obj["kind"] != std::string(kind.kind)) {
    return MakeError(Code::kInvalidArgument,
                     "body is a " + obj["kind"].get<std::string>() +
                         ", but the path is /v1/" + std::string(kind.plural));
  }
  if (NameOf(obj) != name) {
    // An error path: decode again for the line (the fast JSON path keeps none).
    auto with_marks = DecodeYaml(req.body);
    Mark m = with_marks ? FindMark(with_marks->marks,
                                   body.has_metadata ? "metadata.name" : "name")
                        : Mark{};
    return MakeError(Code::kInvalidArgument, "name mismatch",
                     {{"metadata.name", m.line, m.column,
                       "is \"" + NameOf(obj) + "\" but the URL names \"" + name + "\""}});
  }
  if (kind.namespaced && req.HasParam("namespace") &&
      req.Param("namespace") != NamespaceOf(obj)) {
    if (body.explicit_ns) {
      return MakeError(Code::kInvalidArgument,
                       "namespace in the body (" + NamespaceOf(obj) +
                           ") differs from ?namespace=" + req.Param("namespace"));
    }
    obj["metadata"]["namespace"] = req.Param("namespace");
  }
  MT_RETURN_IF_ERROR(node_auth_.CanWriteObject(who, obj));
  if (!DryRun(req)) {
    if (auto st = CheckArtifacts({obj}, {}); !st) {
      // An error path: decode again for the line (the fast JSON path keeps none).
      auto with_marks = DecodeYaml(req.body);
      if (with_marks) st = CheckArtifacts({obj}, with_marks->marks);
      if (!st) return std::unexpected(st.error());
    }
  }
  return obj;
}

void ApiServer::PutStatus(const HttpRequest& req, HttpResponse& res, const Principal& who) {
  auto kind = KindOf(req.matches[0]);
  if (!kind) return SendError(res, kind.error());
  Json body = Json::parse(req.body, nullptr, false);
  if (!body.is_object() || !body.contains("status") || !body["status"].is_object()) {
    return SendError(res, Error(Code::kInvalidArgument, "status update must be a JSON object",
                                {{"status", 0, 0, "required, a map"}}));
  }
  Json obj = {{"kind", std::string(kind->kind)},
              {"metadata",
               {{"name", std::string(req.matches[1])},
                {"namespace", NamespaceParam(req, *kind)}}},
              {"status", body["status"]}};
  if (!kind->namespaced) obj["metadata"]["namespace"] = "";
  if (auto st = CanWriteStatus(who, KeyOf(obj)); !st) return SendError(res, st.error());
  WriteOptions wo;
  wo.dry_run = DryRun(req);
  wo.expected_revision = ResourceVersionOf(body);
  if (kind->kind == "Node" && !wo.dry_run) {
    agents_->ObserveNode(req.matches[1], req.peer_address, obj["status"]);
  }
  auto written = store_->UpdateStatus(obj, wo);
  if (!written) return SendError(res, written.error());
  SendJson(res, 200, *written);
}

void ApiServer::DeleteObject(const HttpRequest& req, HttpResponse& res, const Principal& who) {
  auto kind = KindOf(req.matches[0]);
  if (!kind) return SendError(res, kind.error());
  if (auto st = CanWrite(who, std::string(kind->kind), req.matches[1], true); !st) {
    return SendError(res, st.error());
  }
  WriteOptions wo;
  wo.dry_run = DryRun(req);
  auto deleted = store_->Delete(
      {std::string(kind->kind), NamespaceParam(req, *kind), req.matches[1]}, wo);
  if (!deleted) return SendError(res, deleted.error());
  SendJson(res, 200, *deleted);
}

}  // namespace mentat
