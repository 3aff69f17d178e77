#include "apis/apply.h"

#include "apis/service.h"

namespace mentat {

std::string NameFromSource(const std::string& source) {
  std::string base = source.substr(source.find_last_of('/') + 1);
  auto dot = base.find('.');
  if (dot != std::string::npos) base = base.substr(0, dot);
  return IsDnsLabel(base) ? base : "";
}

std::string DefaultNameForFile(const std::string& source, size_t documents) {
  return documents == 1 ? NameFromSource(source) : "";
}

void EraseServerOwnedMetadata(Json& object) {
  if (!object.is_object() || !object.contains("metadata") || !object["metadata"].is_object()) {
    return;
  }
  for (const char* owned :
       {"resourceVersion", "uid", "generation", "creationTimestamp", "deletionTimestamp"}) {
    object["metadata"].erase(owned);
  }
}

}  // namespace mentat
