#include "cmd/mentat-server/api_server.h"

#include <httplib.h>
#include <set>
#include <sys/socket.h>

#include <spdlog/spdlog.h>

#include "apis/security_profile.h"
#include "apis/service.h"
#include "apis/yaml.h"

namespace mentat {
namespace {

void SendError(httplib::Response& res, const Error& e) {
  res.status = e.HttpStatus();
  res.set_content(e.ToJson().dump() + "\n", "application/json");
}

void SendJson(httplib::Response& res, int status, const Json& j) {
  res.status = status;
  res.set_content(j.dump() + "\n", "application/json");
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

std::string NamespaceParam(const httplib::Request& req, const KindInfo& kind) {
  if (!kind.namespaced) return "";
  std::string ns = req.get_param_value("namespace");
  return ns.empty() ? std::string(kDefaultNamespace) : ns;
}

Result<std::optional<LabelSelector>> SelectorParam(const httplib::Request& req) {
  if (req.get_param_value("labelSelector").empty()) return std::optional<LabelSelector>();
  MT_ASSIGN_OR_RETURN(auto sel, LabelSelector::Parse(req.get_param_value("labelSelector")));
  return std::optional<LabelSelector>(std::move(sel));
}

bool DryRun(const httplib::Request& req) {
  std::string v = req.get_param_value("dryRun");
  return v == "true" || v == "All" || v == "server";
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

// Parses a JSON body fast (nlohmann), but only if it passes the same guards as the YAML
// decoder: no duplicate keys (nlohmann would keep the last silently) and no nesting deeper
// than kMaxManifestDepth. Anything else is left to the YAML decoder, which reports it with a line.
std::optional<Json> FastJson(const std::string& body) {
  if (body.empty() || body.front() != '{' || body.size() > kMaxManifestBytes) return std::nullopt;
  std::vector<std::set<std::string>> keys;
  bool ok = true;
  Json parsed = Json::parse(
      body,
      [&](int depth, Json::parse_event_t event, Json& value) {
        if (!ok) return false;
        if (depth > kMaxManifestDepth) ok = false;
        if (event == Json::parse_event_t::object_start) keys.emplace_back();
        if (event == Json::parse_event_t::object_end && !keys.empty()) keys.pop_back();
        if (event == Json::parse_event_t::key && !keys.empty() &&
            !keys.back().insert(value.get<std::string>()).second) {
          ok = false;
        }
        return ok;
      },
      /*allow_exceptions=*/false);
  if (!ok || !parsed.is_object()) return std::nullopt;
  return parsed;
}

// The name a nameless manifest gets from its file: "dir/api-service.yaml" -> "api-service".
std::string NameFromSource(const std::string& source) {
  std::string base = source.substr(source.find_last_of('/') + 1);
  auto dot = base.find('.');
  if (dot != std::string::npos) base = base.substr(0, dot);
  return IsDnsLabel(base) ? base : "";
}

}  // namespace

Result<std::map<std::string, Json>> ApiServer::Profiles() {
  std::map<std::string, Json> profiles;
  for (const auto& p : BuiltinProfiles()) profiles[NameOf(p)] = p;
  MT_ASSIGN_OR_RETURN(auto stored, store_->List("SecurityProfile", {}));
  for (auto& p : stored.items) {
    std::string name = NameOf(p);
    profiles[name] = std::move(p);
  }
  return profiles;
}

Result<std::vector<Json>> ApiServer::NormalizeAndAdmit(const Document& doc,
                                                       const std::string& default_name) {
  MT_ASSIGN_OR_RETURN(auto objects, NormalizeDocument(doc.value, doc.marks, default_name));
  for (const auto& obj : objects) {
    if (obj.value("kind", "") != "Service") continue;
    MT_ASSIGN_OR_RETURN(auto profiles, Profiles());
    MT_RETURN_IF_ERROR(AdmitService(obj, profiles, doc.marks));
  }
  return objects;
}

ApiServer::ApiServer(Store* store, ApiServerOptions opts)
    : store_(store), opts_(std::move(opts)), http_(std::make_unique<httplib::Server>()) {}

ApiServer::~ApiServer() { Stop(); }

Result<int> ApiServer::Start() {
  // cpp-httplib gives every keep-alive connection and every watch stream a worker for its
  // lifetime, so the pool is sized for many clients. (An event-driven server is issue 5's work.)
  http_->new_task_queue = [] { return new httplib::ThreadPool(256); };
  // One manifest is limited to kMaxManifestBytes; an apply request may carry several.
  http_->set_payload_max_length(kMaxApplyBytes);
  http_->set_keep_alive_max_count(1000);
  // cpp-httplib's default adds SO_REUSEPORT, which lets a second server bind the same port and
  // take half the connections, to a different store. SO_REUSEADDR alone allows quick restarts.
  http_->set_socket_options([this](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listen_fd_ = sock;
  });
  // Responses go out as headers then body; with Nagle's algorithm and the client's delayed
  // ACK, each small response would wait ~40 ms.
  http_->set_tcp_nodelay(true);
  Routes();
  int port = opts_.port;
  if (port == 0) {
    port = http_->bind_to_any_port(opts_.host);
    if (port < 0) return Unavailable("cannot bind " + opts_.host + ": no free port");
  } else if (!http_->bind_to_port(opts_.host, port)) {
    return Unavailable("cannot listen on " + opts_.host + ":" + std::to_string(port) +
                       " (is another mentat-server running there?)");
  }
  // Debian's cpp-httplib listens with a backlog of 5: a burst of clients would have SYNs
  // dropped and wait a second to retry. Listening again raises the backlog.
  if (listen_fd_ >= 0) ::listen(listen_fd_, SOMAXCONN);
  thread_ = std::thread([this] { http_->listen_after_bind(); });
  return port;
}

void ApiServer::Stop() {
  if (stopping_.exchange(true)) return;
  http_->stop();
  if (thread_.joinable()) thread_.join();
}

void ApiServer::Routes() {
  auto& s = *http_;

  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    SendError(res, Error(Code::kInternal, "internal error: " + what));
  });
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) {
      SendError(res, Error(Code::kNotFound, "no route for " + req.method + " " + req.path));
    } else if (res.status == 413) {
      SendError(res, Error(Code::kTooLarge, "request body over the limit of " +
                                                std::to_string(kMaxApplyBytes) + " bytes"));
    } else {
      SendJson(res, res.status,
               {{"code", res.status}, {"reason", "Error"}, {"message", "HTTP " + std::to_string(res.status)},
                {"details", Json::array()}});
    }
  });
  // The API takes YAML or JSON, never form data. curl labels --data-binary bodies as
  // form-urlencoded, and cpp-httplib refuses those above 8 KiB (a compile-time limit of the
  // Debian build) before any handler runs; so such bodies are relabelled as raw.
  s.set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
    auto ct = req.get_header_value("Content-Type");
    if (ct.rfind("application/x-www-form-urlencoded", 0) == 0) {
      auto& mutable_req = const_cast<httplib::Request&>(req);  // the Request is not const
      mutable_req.headers.erase("Content-Type");
      mutable_req.headers.emplace("Content-Type", "application/octet-stream");
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  s.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    spdlog::debug("{} {} -> {}", req.method, req.path, res.status);
  });

  s.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, {{"status", "ok"}, {"revision", store_->CurrentRevision()}});
  });
  s.Get("/v1/snapshot", [this](const httplib::Request&, httplib::Response& res) {
    if (!opts_.snapshot) return SendError(res, Error(Code::kUnavailable, "snapshots are not available"));
    auto text = opts_.snapshot();
    if (!text) return SendError(res, text.error());
    res.status = 200;
    res.set_content(*text, "application/x-ndjson");
  });
  s.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, {{"status", "ready"}, {"revision", store_->CurrentRevision()}});
  });

  // List, or watch with ?watch=true.
  s.Get(R"(/v1/([a-z]+))", [this](const httplib::Request& req, httplib::Response& res) {
    auto kind = KindOf(req.matches[1]);
    if (!kind) return SendError(res, kind.error());
    auto sel = SelectorParam(req);
    if (!sel) return SendError(res, sel.error());
    std::string ns = req.has_param("namespace") ? req.get_param_value("namespace") : "";
    if (!kind->namespaced) ns.clear();
    std::string w = req.get_param_value("watch");
    if (w != "true" && w != "1") {
      ListOptions lo;
      lo.ns = ns;
      lo.selector = *sel;
      auto limit = ParseRevision(req.get_param_value("limit"), "limit");
      if (!limit) return SendError(res, limit.error());
      lo.limit = static_cast<size_t>(*limit);
      lo.continue_token = req.get_param_value("continue");
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
      res.set_content(std::move(body), "application/json");
      return;
    }
    auto rv = ParseRevision(req.get_param_value("resourceVersion"), "resourceVersion");
    if (!rv) return SendError(res, rv.error());
    int64_t from = *rv ? *rv : store_->CurrentRevision();
    auto watcher = store_->Watch(std::string(kind->kind), from);
    if (!watcher) return SendError(res, watcher.error());
    struct Stream {
      WatcherPtr watcher;
      std::optional<LabelSelector> selector;
      std::string ns;
      std::string kind;
      int64_t last_rv;
      std::chrono::steady_clock::time_point last_sent = std::chrono::steady_clock::now();
    };
    auto stream = std::make_shared<Stream>(
        Stream{std::move(*watcher), *sel, ns, std::string(kind->kind), from});
    auto interval = opts_.bookmark_interval;
    res.set_chunked_content_provider(
        "application/x-ndjson",
        [this, stream, interval](size_t, httplib::DataSink& sink) {
          if (stopping_) {
            sink.done();
            return true;
          }
          auto ev = stream->watcher->Next(std::chrono::milliseconds(500));
          if (!ev) {
            // Closed (fell behind, or shutdown): say why as an ERROR event, then end.
            Json e = {{"type", "ERROR"}, {"object", ev.error().ToJson()}};
            std::string line = e.dump() + "\n";
            sink.write(line.data(), line.size());
            sink.done();
            return true;
          }
          auto now = std::chrono::steady_clock::now();
          if (!ev->has_value()) {
            if (now - stream->last_sent < interval) return sink.is_writable();
            // A bookmark never claims more than this stream has delivered.
            Json b = {{"type", "BOOKMARK"},
                      {"object",
                       {{"kind", stream->kind},
                        {"metadata", {{"resourceVersion", std::to_string(stream->last_rv)}}}}}};
            std::string line = b.dump() + "\n";
            stream->last_sent = now;
            return sink.write(line.data(), line.size());
          }
          const WatchEvent& we = **ev;
          stream->last_rv = we.revision;
          if (!stream->ns.empty() && NamespaceOf(we.object) != stream->ns) return true;
          if (stream->selector && !stream->selector->Matches(we.object)) return true;
          Json j = {{"type", EventTypeName(we.type)}, {"object", we.object}};
          std::string line = j.dump() + "\n";
          stream->last_sent = now;
          return sink.write(line.data(), line.size());
        },
        [stream](bool) { stream->watcher->Close(); });
  });

  s.Get(R"(/v1/([a-z]+)/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
    auto kind = KindOf(req.matches[1]);
    if (!kind) return SendError(res, kind.error());
    auto obj = store_->Get({std::string(kind->kind), NamespaceParam(req, *kind), req.matches[2]});
    if (!obj) return SendError(res, obj.error());
    SendJson(res, 200, *obj);
  });

  s.Put(R"(/v1/([a-z]+)/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
    auto kind = KindOf(req.matches[1]);
    if (!kind) return SendError(res, kind.error());
    std::string name = req.matches[2];
    // JSON from programs takes the fast path (nlohmann). YAML, and JSON that fails
    // validation, goes through the YAML decoder, which knows the line of every field.
    auto normalize = [&](Document d) {
      if (d.value.is_object() && !d.value.contains("kind") && kind->kind != "Service" &&
          !d.value.contains("security")) {
        d.value["kind"] = std::string(kind->kind);
      }
      return std::make_pair(d.value, NormalizeAndAdmit(d, name));
    };
    std::optional<std::pair<Json, Result<std::vector<Json>>>> done;
    if (auto fast = FastJson(req.body)) {
      auto attempt = normalize(Document{"", std::move(*fast), {}, 1});
      if (attempt.second) done = std::move(attempt);
    }
    if (!done) {
      auto doc = DecodeYaml(req.body);
      if (!doc) return SendError(res, doc.error());
      done = normalize(std::move(*doc));
    }
    Json input = std::move(done->first);
    auto& objects = done->second;
    if (!objects) return SendError(res, objects.error());
    if (objects->size() != 1) {
      return SendError(res, Error(Code::kInvalidArgument,
                                  "this document declares " + std::to_string(objects->size()) +
                                      " objects; use POST /v1/apply (mt apply) for it"));
    }
    auto obj = std::optional<Json>((*objects)[0]);
    if ((*obj)["kind"] != std::string(kind->kind)) {
      return SendError(res, Error(Code::kInvalidArgument,
                                  "body is a " + (*obj)["kind"].get<std::string>() +
                                      ", but the path is /v1/" + std::string(kind->plural)));
    }
    if (NameOf(*obj) != name) {
      // An error path: decode again for the line (the fast JSON path keeps none).
      auto with_marks = DecodeYaml(req.body);
      Mark m = with_marks ? FindMark(with_marks->marks,
                                     input.contains("metadata") ? "metadata.name" : "name")
                          : Mark{};
      return SendError(res, Error(Code::kInvalidArgument, "name mismatch",
                                  {{"metadata.name", m.line, m.column,
                                    "is \"" + NameOf(*obj) + "\" but the URL names \"" + name +
                                        "\""}}));
    }
    if (kind->namespaced && req.has_param("namespace") &&
        req.get_param_value("namespace") != NamespaceOf(*obj)) {
      bool explicit_ns = input.contains("namespace") ||
                         (input.contains("metadata") && input["metadata"].is_object() &&
                          input["metadata"].contains("namespace"));
      if (explicit_ns) {
        return SendError(res, Error(Code::kInvalidArgument,
                                    "namespace in the body (" + NamespaceOf(*obj) +
                                        ") differs from ?namespace=" +
                                        req.get_param_value("namespace")));
      }
      (*obj)["metadata"]["namespace"] = req.get_param_value("namespace");
    }
    WriteOptions wo;
    wo.dry_run = DryRun(req);
    wo.expected_revision = ResourceVersionOf(*obj);
    if (wo.expected_revision < 0) {
      return SendError(res, Error(Code::kInvalidArgument, "invalid metadata.resourceVersion"));
    }
    auto existed = store_->Get(KeyOf(*obj));
    auto written = store_->Put(*obj, wo);
    if (!written) return SendError(res, written.error());
    SendJson(res, existed ? 200 : 201, *written);
  });

  // Apply a set of manifests as one transaction: every document of every file is decoded,
  // normalized and admitted first; if any fails, nothing is written.
  s.Post("/v1/apply", [this](const httplib::Request& req, httplib::Response& res) {
    std::vector<std::pair<std::string, std::string>> sources;  // (source, text)
    Json body = Json::parse(req.body, nullptr, false);
    if (body.is_object() && body.contains("documents")) {
      if (!body["documents"].is_array()) {
        return SendError(res, Error(Code::kInvalidArgument, "documents must be a list"));
      }
      for (const auto& d : body["documents"]) {
        if (!d.is_object() || !d.contains("text") || !d["text"].is_string()) {
          return SendError(res, Error(Code::kInvalidArgument,
                                      "each document needs text (and optionally source)"));
        }
        sources.emplace_back(d.value("source", Json("")).is_string() ? d.value("source", "") : "",
                             d["text"].get<std::string>());
      }
    } else {
      sources.emplace_back("", req.body);
    }
    std::vector<FieldError> errors;
    Code code = Code::kOk;
    int bad_documents = 0;
    std::vector<Json> objects;
    std::map<std::string, std::string> first_seen;  // store key -> where
    for (const auto& [source, text] : sources) {
      auto add_errors = [&](const Error& e, int line_hint) {
        ++bad_documents;
        if (code == Code::kOk || e.code() == Code::kInvalidArgument || e.code() == Code::kTooLarge) {
          code = e.code();
        }
        if (e.details().empty()) {
          FieldError fe("", line_hint, 0, e.message());
          fe.source = source;
          errors.push_back(fe);
        }
        for (auto d : e.details()) {
          d.source = source;
          errors.push_back(std::move(d));
        }
      };
      auto docs = DecodeYamlStream(text);
      if (!docs) {
        add_errors(docs.error(), 0);
        continue;
      }
      std::string default_name = docs->size() == 1 ? NameFromSource(source) : "";
      std::string default_ns = req.get_param_value("namespace");
      for (auto doc : *docs) {
        // `mt -n NS apply` places objects that name no namespace of their own.
        if (!default_ns.empty() && doc.value.is_object()) {
          Json& v = doc.value;
          bool canonical = v.contains("metadata") || v.contains("spec");
          if (!canonical && !v.contains("namespace") && !v.contains("security")) v["namespace"] = default_ns;
          if (canonical && v["metadata"].is_object() && !v["metadata"].contains("namespace")) {
            v["metadata"]["namespace"] = default_ns;
          }
        }
        auto objs = NormalizeAndAdmit(doc, default_name);
        if (!objs) {
          add_errors(objs.error(), doc.first_line);
          continue;
        }
        for (auto& o : *objs) {
          for (const char* owned : {"resourceVersion", "uid", "generation", "creationTimestamp",
                                    "deletionTimestamp"}) {
            o["metadata"].erase(owned);
          }
          std::string where = (source.empty() ? "document" : source) + ":" +
                              std::to_string(doc.first_line);
          std::string key = KeyOf(o).ToString();
          auto [it, inserted] = first_seen.emplace(key, where);
          if (!inserted) {
            FieldError fe("metadata.name", doc.first_line, 0,
                          key + " is declared twice: first at " + it->second);
            fe.source = source;
            errors.push_back(fe);
            ++bad_documents;
            code = Code::kInvalidArgument;
            continue;
          }
          objects.push_back(std::move(o));
        }
      }
    }
    if (!errors.empty()) {
      return SendError(res, Error(code, std::to_string(bad_documents) + " document" +
                                            (bad_documents == 1 ? " is" : "s are") +
                                            " invalid; nothing was applied",
                                  std::move(errors)));
    }
    bool dry_run = DryRun(req);
    auto results = store_->Txn(objects, dry_run);
    if (!results) return SendError(res, results.error());
    Json items = Json::array();
    static const char* actions[] = {"created", "configured", "unchanged"};
    for (const auto& r : *results) {
      items.push_back({{"kind", r.object.value("kind", "")},
                       {"name", NameOf(r.object)},
                       {"namespace", NamespaceOf(r.object)},
                       {"action", actions[r.action]},
                       {"resourceVersion", r.object["metadata"].value("resourceVersion", "")}});
    }
    SendJson(res, 200, {{"items", items}, {"dryRun", dry_run},
                        {"resourceVersion", std::to_string(store_->CurrentRevision())}});
  });

  s.Put(R"(/v1/([a-z]+)/([^/]+)/status)", [this](const httplib::Request& req,
                                                 httplib::Response& res) {
    auto kind = KindOf(req.matches[1]);
    if (!kind) return SendError(res, kind.error());
    Json body = Json::parse(req.body, nullptr, false);
    if (!body.is_object() || !body.contains("status") || !body["status"].is_object()) {
      return SendError(res, Error(Code::kInvalidArgument, "status update must be a JSON object",
                                  {{"status", 0, 0, "required, a map"}}));
    }
    Json obj = {{"kind", std::string(kind->kind)},
                {"metadata",
                 {{"name", std::string(req.matches[2])},
                  {"namespace", NamespaceParam(req, *kind)}}},
                {"status", body["status"]}};
    if (!kind->namespaced) obj["metadata"]["namespace"] = "";
    WriteOptions wo;
    wo.dry_run = DryRun(req);
    wo.expected_revision = ResourceVersionOf(body);
    auto written = store_->UpdateStatus(obj, wo);
    if (!written) return SendError(res, written.error());
    SendJson(res, 200, *written);
  });

  s.Delete(R"(/v1/([a-z]+)/([^/]+))", [this](const httplib::Request& req,
                                             httplib::Response& res) {
    auto kind = KindOf(req.matches[1]);
    if (!kind) return SendError(res, kind.error());
    WriteOptions wo;
    wo.dry_run = DryRun(req);
    auto deleted = store_->Delete(
        {std::string(kind->kind), NamespaceParam(req, *kind), req.matches[2]}, wo);
    if (!deleted) return SendError(res, deleted.error());
    SendJson(res, 200, *deleted);
  });
}

}  // namespace mentat
