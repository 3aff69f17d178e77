#include "store/object_layer.h"

#include <algorithm>
#include <set>

namespace mentat {

std::unexpected<Error> ObjectNotFound(const ObjectKey& key) {
  return NotFound(key.kind + " \"" + key.name + "\" not found" +
                  (key.ns.empty() || key.ns == kDefaultNamespace ? "" : " in namespace " + key.ns));
}

namespace {

Result<Json> FindOrNotFound(ObjectReader& reader, const ObjectKey& key) {
  MT_ASSIGN_OR_RETURN(std::optional<Json> obj, reader.Find(key));
  if (!obj) return ObjectNotFound(key);
  return std::move(*obj);
}

bool HasFinalizers(Json& obj) {
  const Json& finalizers = obj["metadata"].value("finalizers", Json::array());
  return finalizers.is_array() && !finalizers.empty();
}

// The change that deletes `obj`: finalizers hold it, so it is only marked (once); without them
// it goes. nullopt (leaving `obj` as it was) when it is marked already.
std::optional<Change> DeletionOf(const ObjectKey& key, Json& obj) {
  if (!HasFinalizers(obj)) return Change{key, EventType::kDeleted, std::move(obj)};
  // Finalizers hold the object: it is marked, and goes when the last finalizer is removed.
  if (obj["metadata"].contains("deletionTimestamp")) return std::nullopt;
  obj["metadata"]["deletionTimestamp"] = NowRfc3339();
  return Change{key, EventType::kModified, std::move(obj)};
}

Result<std::optional<Change>> PrepareCreate(const ObjectKey& key, const Json& in, Json obj,
                                            const WriteOptions& opts) {
  if (opts.expected_revision != 0) {
    return MakeError(Code::kConflict, key.kind + " \"" + key.name +
                                          "\" does not exist, but resourceVersion " +
                                          std::to_string(opts.expected_revision) + " was required");
  }
  Json& meta = obj["metadata"];
  meta["uid"] = NewUid();
  meta["creationTimestamp"] = NowRfc3339();
  meta["generation"] = 1;
  obj["status"] = in.contains("status") ? in["status"] : Json::object();
  return std::optional<Change>(Change{key, EventType::kAdded, std::move(obj)});
}

// While an object is being deleted its finalizers may only be removed: removing the last one
// deletes it. nullopt when the write may go ahead as an update.
Result<std::optional<Change>> FinalizersWhileDeleting(const ObjectKey& key, const Json& old,
                                                      const Json& meta) {
  const Json& old_meta = old["metadata"];
  const Json& finalizers = meta.value("finalizers", Json::array());
  if (!finalizers.is_array() || finalizers.empty()) {
    Json gone = old;
    gone["metadata"].erase("finalizers");
    return std::optional<Change>(Change{key, EventType::kDeleted, std::move(gone)});
  }
  for (const auto& f : finalizers) {
    const Json& before = old_meta.value("finalizers", Json::array());
    if (std::find(before.begin(), before.end(), f) == before.end()) {
      return FailedPrecondition(key.kind + " \"" + key.name + "\" is being deleted: finalizer " +
                                f.dump() + " cannot be added");
    }
  }
  return std::optional<Change>();
}

Result<std::optional<Change>> PrepareUpdate(const ObjectKey& key, const Json& old, Json obj,
                                            const WriteOptions& opts, Json* current) {
  if (opts.create_only) {
    return MakeError(Code::kAlreadyExists, key.kind + " \"" + key.name + "\" already exists");
  }
  int64_t old_rev = ResourceVersionOf(old);
  if (opts.expected_revision != 0 && opts.expected_revision != old_rev) {
    return MakeError(Code::kConflict,
                     key.kind + " \"" + key.name + "\" was modified: resourceVersion is " +
                         std::to_string(old_rev) + ", the write expected " +
                         std::to_string(opts.expected_revision) + "; re-read and retry");
  }
  Json& meta = obj["metadata"];
  const Json& old_meta = old["metadata"];
  meta["uid"] = old_meta.value("uid", "");
  meta["creationTimestamp"] = old_meta.value("creationTimestamp", "");
  int64_t generation = old_meta.value("generation", int64_t{1});
  bool spec_changed = obj.value("spec", Json()) != old.value("spec", Json());
  meta["generation"] = spec_changed ? generation + 1 : generation;
  if (old_meta.contains("deletionTimestamp"))
    meta["deletionTimestamp"] = old_meta["deletionTimestamp"];
  meta.erase("resourceVersion");
  obj["status"] = old.value("status", Json::object());
  if (old_meta.contains("deletionTimestamp")) {
    MT_ASSIGN_OR_RETURN(auto deletion, FinalizersWhileDeleting(key, old, meta));
    if (deletion) return deletion;
  }
  Json old_cmp = old;
  old_cmp["metadata"].erase("resourceVersion");
  if (old_cmp == obj) {  // no-op writes do not create a revision
    *current = old;
    return std::optional<Change>();
  }
  return std::optional<Change>(Change{key, EventType::kModified, std::move(obj)});
}

}  // namespace

Result<std::optional<Change>> PreparePut(ObjectReader& reader, const Json& in,
                                         const WriteOptions& opts, Json* current) {
  ObjectKey key = KeyOf(in);
  if (key.kind.empty() || key.name.empty()) return InvalidArgument("object has no kind or name");
  MT_ASSIGN_OR_RETURN(std::optional<Json> existing, reader.Find(key));
  // Status is never written by a put: a create takes the one it carries, an update keeps the
  // stored one.
  Json obj = in;
  obj.erase("status");
  if (!existing) return PrepareCreate(key, in, std::move(obj), opts);
  return PrepareUpdate(key, *existing, std::move(obj), opts, current);
}

Result<std::optional<Change>> PrepareUpdateStatus(ObjectReader& reader, const Json& in,
                                                  const WriteOptions& opts, Json* current) {
  ObjectKey key = KeyOf(in);
  MT_ASSIGN_OR_RETURN(Json obj, FindOrNotFound(reader, key));
  int64_t old_rev = ResourceVersionOf(obj);
  if (opts.expected_revision != 0 && opts.expected_revision != old_rev) {
    return MakeError(Code::kConflict, key.kind + " \"" + key.name +
                                          "\" was modified: resourceVersion is " +
                                          std::to_string(old_rev) + ", the write expected " +
                                          std::to_string(opts.expected_revision));
  }
  Json status = in.value("status", Json::object());
  if (obj.value("status", Json::object()) == status) {
    *current = std::move(obj);
    return std::optional<Change>();
  }
  obj["status"] = std::move(status);
  return std::optional<Change>(Change{key, EventType::kModified, std::move(obj)});
}

Result<std::optional<Change>> PrepareDelete(ObjectReader& reader, const ObjectKey& key,
                                            const WriteOptions& opts, Json* current) {
  MT_ASSIGN_OR_RETURN(Json obj, FindOrNotFound(reader, key));
  if (opts.expected_revision != 0 && opts.expected_revision != ResourceVersionOf(obj)) {
    return MakeError(Code::kConflict, key.kind + " \"" + key.name + "\" was modified");
  }
  std::optional<Change> change = DeletionOf(key, obj);
  if (!change) *current = std::move(obj);
  return change;
}

Result<TxnPlan> PrepareTxn(ObjectReader& reader, const std::vector<Json>& puts,
                           const std::vector<ObjectKey>& deletes) {
  std::set<std::string> seen;  // by StoreKey: two writes to one stored object are refused
  TxnPlan plan;
  for (const auto& in : puts) {
    ObjectKey key = KeyOf(in);
    if (!seen.insert(StoreKey(key)).second) {
      return InvalidArgument(key.ToString() + " appears twice in one transaction");
    }
    Json current;
    WriteOptions o;
    o.expected_revision = ResourceVersionOf(in) > 0 ? ResourceVersionOf(in) : 0;
    MT_ASSIGN_OR_RETURN(auto change, PreparePut(reader, in, o, &current));
    if (!change) {
      plan.results.push_back({TxnResult::kUnchanged, current});
      continue;
    }
    plan.results.push_back(
        {change->type == EventType::kAdded ? TxnResult::kCreated : TxnResult::kConfigured, Json()});
    plan.changes.push_back(std::move(*change));
  }
  for (const auto& key : deletes) {
    if (!seen.insert(StoreKey(key)).second) {
      return InvalidArgument(key.ToString() + " is both written and deleted in one transaction");
    }
    MT_ASSIGN_OR_RETURN(std::optional<Json> obj, reader.Find(key));
    if (!obj) continue;
    std::optional<Change> change = DeletionOf(key, *obj);
    if (!change) continue;
    plan.changes.push_back(std::move(*change));
    plan.results.push_back({TxnResult::kDeleted, Json()});
  }
  return plan;
}

std::vector<TxnResult> FinishTxn(TxnPlan& plan) {
  size_t next = 0;
  for (auto& r : plan.results) {
    if (r.action == TxnResult::kUnchanged) continue;
    r.json = std::move(plan.changes[next].json);
    r.object = std::move(plan.changes[next++].object);
  }
  return std::move(plan.results);
}

}  // namespace mentat
