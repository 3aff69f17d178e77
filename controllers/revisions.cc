#include "controllers/revisions.h"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace mentat {
namespace {

Result<std::vector<Json>> ListRevisions(Store* store, const std::string& ns, const std::string& service) {
  ListOptions lo;
  lo.ns = ns;
  MT_ASSIGN_OR_RETURN(lo.selector, LabelSelector::Parse(std::string(kLabelService) + "=" + service));
  MT_ASSIGN_OR_RETURN(auto list, store->List("ServiceRevision", lo));
  std::sort(list.items.begin(), list.items.end(),
            [](const Json& a, const Json& b) { return RevisionNumber(a) < RevisionNumber(b); });
  return list.items;
}

}  // namespace

std::string RevisionName(const std::string& service, const Json& task_template) {
  return service + "-" + ContentHash(task_template).substr(0, 10);
}

int64_t RevisionNumber(const Json& revision) {
  const Json& spec = revision.value("spec", Json::object());
  auto it = spec.find("revision");
  return it != spec.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

Result<Json> EnsureRevision(Store* store, const Json& service, const Json& task_template,
                            const std::string& keep) {
  const std::string ns = NamespaceOf(service);
  const std::string svc = NameOf(service);
  const std::string name = RevisionName(svc, task_template);
  MT_ASSIGN_OR_RETURN(auto revisions, ListRevisions(store, ns, svc));
  int64_t newest = revisions.empty() ? 0 : RevisionNumber(revisions.back());
  auto mine = std::find_if(revisions.begin(), revisions.end(),
                           [&](const Json& r) { return NameOf(r) == name; });
  Json result;
  if (mine != revisions.end() && RevisionNumber(*mine) == newest) {
    result = *mine;
  } else if (mine != revisions.end()) {
    // Back to an older template: it becomes the newest revision.
    Json bumped = *mine;
    bumped["spec"]["revision"] = newest + 1;
    WriteOptions wo;
    wo.expected_revision = ResourceVersionOf(*mine);
    MT_ASSIGN_OR_RETURN(result, store->Put(bumped, wo));
    *mine = result;
  } else {
    Json rev = {{"apiVersion", std::string(kApiVersion)},
                {"kind", "ServiceRevision"},
                {"metadata",
                 {{"name", name}, {"namespace", ns}, {"labels", {{std::string(kLabelService), svc}}}}},
                {"spec", {{"service", svc}, {"revision", newest + 1}, {"template", task_template}}}};
    WriteOptions wo;
    wo.create_only = true;
    MT_ASSIGN_OR_RETURN(result, store->Put(rev, wo));
    revisions.push_back(result);
  }
  // History: the oldest go first, but never the one just made newest nor the stable one.
  std::sort(revisions.begin(), revisions.end(),
            [](const Json& a, const Json& b) { return RevisionNumber(a) < RevisionNumber(b); });
  size_t excess = revisions.size() > kRevisionHistoryLimit ? revisions.size() - kRevisionHistoryLimit : 0;
  for (const auto& r : revisions) {
    if (excess == 0) break;
    if (NameOf(r) == name || NameOf(r) == keep) continue;
    auto st = store->Delete({"ServiceRevision", ns, NameOf(r)});
    if (!st && st.error().code() != Code::kNotFound) return std::unexpected(st.error());
    --excess;
  }
  return result;
}

void RecordOutcome(Store* store, const Json& revision, const std::string& outcome,
                   const std::string& message) {
  Json update = revision;
  update["status"] = {{"outcome", outcome}, {"message", message}, {"at", NowRfc3339()}};
  auto st = store->UpdateStatus(update);
  if (!st && st.error().code() != Code::kNotFound) {
    spdlog::warn("service-controller: recording the outcome of {}: {}", NameOf(revision),
                 st.error().message());
  }
}

Status DeleteRevisions(Store* store, const std::string& ns, const std::string& service) {
  MT_ASSIGN_OR_RETURN(auto revisions, ListRevisions(store, ns, service));
  for (const auto& r : revisions) {
    auto st = store->Delete({"ServiceRevision", ns, NameOf(r)});
    if (!st && st.error().code() != Code::kNotFound) return std::unexpected(st.error());
  }
  return {};
}

}  // namespace mentat
