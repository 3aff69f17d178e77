// The API server's apply route: POST /v1/apply, a set of manifests as one transaction, with
// apply sets and prune.
#include <algorithm>
#include <utility>

#include "apis/apply.h"
#include "apis/server/api_helpers.h"
#include "apis/server/api_server.h"
#include "apis/service.h"
#include "apis/yaml.h"

namespace mentat {
namespace {

// The apply body's files as (source, text): {"documents": [{source, text}...]}, or the body
// itself as one nameless file.
Result<std::vector<std::pair<std::string, std::string>>> ApplySources(const HttpRequest& req) {
  std::vector<std::pair<std::string, std::string>> sources;  // (source, text)
  Json body = Json::parse(req.body, nullptr, false);
  if (body.is_object() && body.contains("documents")) {
    if (!body["documents"].is_array()) {
      return MakeError(Code::kInvalidArgument, "documents must be a list");
    }
    for (const auto& d : body["documents"]) {
      if (!d.is_object() || !d.contains("text") || !d["text"].is_string()) {
        return MakeError(Code::kInvalidArgument,
                         "each document needs text (and optionally source)");
      }
      sources.emplace_back(d.value("source", Json("")).is_string() ? d.value("source", "") : "",
                           d["text"].get<std::string>());
    }
  } else {
    sources.emplace_back("", req.body);
  }
  return sources;
}

}  // namespace

void ApiServer::ApplyRoutes() {
  // Apply a set of manifests as one transaction: every document of every file is decoded,
  // normalized and admitted first; if any fails, nothing is written.
  Post("/v1/apply", [this](const HttpRequest& req, HttpResponse& res, const Principal& who) {
    Apply(req, res, who);
  });
}

void ApiServer::Apply(const HttpRequest& req, HttpResponse& res, const Principal& who) {
  std::map<std::string, std::string> first_seen;  // store key -> where
  auto objects = DecodeApply(req, first_seen);
  if (!objects) return SendError(res, objects.error());
  for (const auto& o : *objects) {
    if (auto st = CanWrite(who, o.value("kind", ""), NameOf(o), false); !st) {
      return SendError(res, st.error());
    }
    if (auto st = node_auth_.CanWriteObject(who, o); !st) return SendError(res, st.error());
  }
  auto pruned = LabelApplySet(req, who, *objects, first_seen);
  if (!pruned) return SendError(res, pruned.error());
  bool dry_run = DryRun(req);
  auto results = store_->Txn(*objects, dry_run, *pruned);
  if (!results) return SendError(res, results.error());
  Json items = Json::array();
  static const char* actions[] = {"created", "configured", "unchanged", "pruned"};
  // The answer's resourceVersion is this apply's own: the latest of its objects' revisions,
  // not the store's revision when the answer is made (a controller may have written since,
  // and a watch from there would miss that write).
  int64_t last = 0;
  for (const auto& r : *results) {
    const std::string rv = r.object["metadata"].value("resourceVersion", "");
    if (auto n = ParseRevision(rv, "resourceVersion"); n) last = std::max(last, *n);
    items.push_back({{"kind", r.object.value("kind", "")},
                     {"name", NameOf(r.object)},
                     {"namespace", NamespaceOf(r.object)},
                     {"action", actions[r.action]},
                     {"resourceVersion", rv}});
  }
  if (dry_run || last == 0) last = store_->CurrentRevision();
  SendJson(res, 200, {{"items", items}, {"dryRun", dry_run},
                      {"resourceVersion", std::to_string(last)}});
}

// Every document of every file, decoded, normalized and admitted, each object once; or one
// error listing every document that failed.
Result<std::vector<Json>> ApiServer::DecodeApply(const HttpRequest& req,
                                                 std::map<std::string, std::string>& first_seen) {
  MT_ASSIGN_OR_RETURN(auto sources, ApplySources(req));
  std::vector<FieldError> errors;
  Code code = Code::kOk;
  int bad_documents = 0;
  std::vector<Json> objects;
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
    std::string default_name = DefaultNameForFile(source, docs->size());
    std::string default_ns = req.Param("namespace");
    for (auto doc : *docs) {
      // `mt -n NS apply` places objects that name no namespace of their own.
      DefaultNamespace(doc.value, default_ns);
      auto objs = NormalizeAndAdmit(doc, default_name);
      if (!objs) {
        add_errors(objs.error(), doc.first_line);
        continue;
      }
      // A dry run uploads nothing (`mt apply --dry-run` packs only), so it needs no artifact.
      if (!DryRun(req)) {
        if (auto st = CheckArtifacts(*objs, doc.marks); !st) {
          add_errors(st.error(), doc.first_line);
          continue;
        }
      }
      for (auto& o : *objs) {
        EraseServerOwnedMetadata(o);
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
    return MakeError(code, std::to_string(bad_documents) + " document" +
                               (bad_documents == 1 ? " is" : "s are") +
                               (code == Code::kForbidden ? " not allowed" : " invalid") +
                               "; nothing was applied",
                     std::move(errors));
  }
  return objects;
}

// An apply set: every object is labelled with it, and --prune deletes the objects an
// earlier apply of the same set labelled that this one no longer declares. Never others.
// Answers the keys to prune.
Result<std::vector<ObjectKey>> ApiServer::LabelApplySet(
    const HttpRequest& req, const Principal& who, std::vector<Json>& objects,
    const std::map<std::string, std::string>& first_seen) {
  std::string applyset = req.Param("applyset");
  bool prune = req.Param("prune") == "true";
  if (prune && applyset.empty()) {
    return MakeError(Code::kInvalidArgument, "prune needs an apply set",
                     {{"prune", 0, 0,
                       "give applyset=NAME: only objects an earlier apply of that "
                       "same set recorded are ever pruned"}});
  }
  if (!applyset.empty() && !IsDnsLabel(applyset)) {
    return MakeError(Code::kInvalidArgument, "invalid apply set name",
                     {{"applyset", 0, 0, "must be a DNS label, got \"" + applyset + "\""}});
  }
  std::vector<ObjectKey> pruned;
  if (applyset.empty()) return pruned;
  for (auto& o : objects) {
    auto current = store_->Get(KeyOf(o));
    if (current) {
      std::string owner = LabelOf(*current, kLabelApplySet);
      if (!owner.empty() && owner != applyset) {
        return MakeError(Code::kConflict, KeyOf(o).ToString() + " belongs to apply set \"" +
                                              owner + "\", not \"" + applyset +
                                              "\"; nothing was applied");
      }
    }
    o["metadata"]["labels"][std::string(kLabelApplySet)] = applyset;
  }
  if (!prune) return pruned;
  MT_ASSIGN_OR_RETURN(auto sel,
                      LabelSelector::Parse(std::string(kLabelApplySet) + "=" + applyset));
  for (const auto& info : Kinds()) {
    ListOptions lo;
    lo.selector = sel;
    MT_ASSIGN_OR_RETURN(auto members, store_->List(std::string(info.kind), lo));
    for (const auto& m : members.items) {
      ObjectKey key = KeyOf(m);
      if (first_seen.count(key.ToString())) continue;
      MT_RETURN_IF_ERROR(CanWrite(who, key.kind, key.name, true));
      pruned.push_back(key);
    }
  }
  return pruned;
}

}  // namespace mentat
