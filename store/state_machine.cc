#include "store/state_machine.h"

namespace mentat {

// Declared in store.h: every store's events are named alike.
std::string EventTypeName(EventType t) {
  switch (t) {
    case EventType::kAdded:
      return "ADDED";
    case EventType::kModified:
      return "MODIFIED";
    case EventType::kDeleted:
      return "DELETED";
    case EventType::kBookmark:
      return "BOOKMARK";
  }
  return "UNKNOWN";
}

std::string StoreKey(const ObjectKey& key) { return key.kind + "/" + key.ns + "/" + key.name; }

void StampRevisions(std::vector<Change>& changes, int64_t first) {
  for (size_t i = 0; i < changes.size(); ++i) {
    const int64_t rev = first + static_cast<int64_t>(i);
    changes[i].object["metadata"]["resourceVersion"] = std::to_string(rev);
  }
}

}  // namespace mentat
