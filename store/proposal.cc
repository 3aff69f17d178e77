#include "store/proposal.h"

namespace mentat {
namespace {

Json KeyJson(const ObjectKey& k) { return Json::array({k.kind, k.ns, k.name}); }

Result<ObjectKey> KeyFrom(const Json& j) {
  if (!j.is_array() || j.size() != 3 || !j[0].is_string() || !j[1].is_string() || !j[2].is_string()) {
    return InvalidArgument("proposal: a key is not [kind, namespace, name]");
  }
  return ObjectKey{j[0].get<std::string>(), j[1].get<std::string>(), j[2].get<std::string>()};
}

Result<EventType> TypeFrom(const Json& j) {
  if (!j.is_number_integer()) return InvalidArgument("proposal: a change's type is not a number");
  int t = j.get<int>();
  if (t != static_cast<int>(EventType::kAdded) && t != static_cast<int>(EventType::kModified) &&
      t != static_cast<int>(EventType::kDeleted)) {
    return InvalidArgument("proposal: a change's type " + std::to_string(t) + " is not a write");
  }
  return static_cast<EventType>(t);
}

// Takes the objects out of `j` (moved, not copied).
Result<Proposal> FromJson(Json& j) {
  if (!j.is_object() || !j.value("id", Json()).is_string() || !j.value("reads", Json()).is_array() ||
      !j.value("changes", Json()).is_array()) {
    return InvalidArgument("proposal: not an object with id, reads and changes");
  }
  Proposal p;
  p.id = j["id"].get<std::string>();
  for (const auto& r : j["reads"]) {
    if (!r.is_array() || r.size() != 2 || !r[1].is_number_integer()) {
      return InvalidArgument("proposal: a read is not [key, resourceVersion]");
    }
    MT_ASSIGN_OR_RETURN(ObjectKey key, KeyFrom(r[0]));
    p.reads.push_back({std::move(key), r[1].get<int64_t>()});
  }
  for (auto& c : j["changes"]) {
    if (!c.is_object() || !c.contains("key") || !c.contains("type") || !c.contains("object")) {
      return InvalidArgument("proposal: a change is not {key, type, object}");
    }
    MT_ASSIGN_OR_RETURN(ObjectKey key, KeyFrom(c["key"]));
    MT_ASSIGN_OR_RETURN(EventType type, TypeFrom(c["type"]));
    p.changes.push_back(Change{std::move(key), type, std::move(c["object"]), ""});
  }
  return p;
}

}  // namespace

std::string EncodeProposal(const Proposal& p) {
  // Written out piece by piece: wrapping each object in a document first would copy it.
  Json reads = Json::array();
  for (const auto& r : p.reads) reads.push_back(Json::array({KeyJson(r.key), r.resource_version}));
  std::string out = "{\"changes\":[";
  for (size_t i = 0; i < p.changes.size(); ++i) {
    const Change& c = p.changes[i];
    if (i > 0) out += ',';
    out += "{\"key\":" + KeyJson(c.key).dump() + ",\"object\":";
    out += c.object.dump();
    out += ",\"type\":" + std::to_string(static_cast<int>(c.type)) + "}";
  }
  out += "],\"id\":" + Json(p.id).dump() + ",\"reads\":" + reads.dump() + "}";
  return out;
}

Result<Proposal> DecodeProposal(std::string_view bytes) {
  Json j = Json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument("proposal: not JSON");
  return FromJson(j);
}

Result<std::optional<Json>> RecordingReader::Find(const ObjectKey& key) {
  MT_ASSIGN_OR_RETURN(std::optional<Json> obj, inner_.Find(key));
  bool seen = false;
  for (const auto& r : reads_) seen = seen || r.key == key;
  if (!seen) reads_.push_back({key, obj ? ResourceVersionOf(*obj) : 0});
  return obj;
}

Result<StateMachine::Applied> ApplyProposal(StateMachine& state, int64_t index, Proposal& p) {
  if (index != StateMachine::kLocalWrite && index <= state.AppliedIndex()) {
    return StateMachine::Applied{};  // replayed: applied before
  }
  for (const auto& r : p.reads) {
    MT_ASSIGN_OR_RETURN(std::optional<Json> now, state.Find(r.key));
    int64_t version = now ? ResourceVersionOf(*now) : 0;
    if (version == r.resource_version) continue;
    std::vector<Change> none;
    MT_RETURN_IF_ERROR(state.ApplyAt(index, none));  // the index moves; nothing is written
    return Conflict(r.key.ToString() + " changed while the write was being replicated (" +
                    (r.resource_version == 0 ? std::string("absent") : "resourceVersion " +
                                                    std::to_string(r.resource_version)) +
                    " when decided, " +
                    (version == 0 ? std::string("absent") : "resourceVersion " + std::to_string(version)) +
                    " when applied)");
  }
  return state.ApplyAt(index, p.changes);
}

}  // namespace mentat
