#include "apis/server/artifact_references.h"

#include <cctype>

#include "apis/service.h"

namespace mentat {
namespace {

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void CollectDigests(const Json& j, std::set<std::string>* out) {
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      if (k == "rootfs" && v.is_string() && IsArtifactDigest(v.get<std::string>())) {
        out->insert(v.get<std::string>());
      } else {
        CollectDigests(v, out);
      }
    }
  } else if (j.is_array()) {
    for (const auto& v : j) CollectDigests(v, out);
  }
}

}  // namespace

std::set<std::string> ArtifactsNamedBy(const Json& spec) {
  std::set<std::string> digests;
  CollectDigests(spec, &digests);
  return digests;
}

Result<std::map<std::string, std::vector<std::string>>> ArtifactReferences(Store& store) {
  std::map<std::string, std::vector<std::string>> refs;
  for (const char* kind : {"Service", "Allocation"}) {
    MT_ASSIGN_OR_RETURN(auto list, store.List(kind, {}));
    for (const auto& obj : list.items) {
      for (const auto& d : ArtifactsNamedBy(obj.value("spec", Json::object()))) {
        refs[d].push_back(Lower(kind) + " " + NamespaceOf(obj) + "/" + NameOf(obj));
      }
    }
  }
  return refs;
}

}  // namespace mentat
