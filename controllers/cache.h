// The informer cache (after client-go's): the objects of the kinds controllers read, kept in
// memory from one list and the watch that follows, so a reconcile reads maps instead of
// parsing the store. Allocations are also indexed by their service. Events are applied only
// when newer than what the cache holds (by resourceVersion), so a list and a watch that
// overlap, or a re-list after the watch broke, never move an object backwards. Fill and Apply
// run on the manager's watch thread, and each list is taken after its watch began, so a list
// is never older than a deletion the cache has applied.
//
// A cache lags the store by the time its watch takes to deliver: controllers read it, write
// to the store conditionally, and are woken again by the events of their own writes.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "store/store.h"

namespace mentat {

using ObjectPtr = std::shared_ptr<const Json>;

class ObjectCache {
 public:
  // The kinds it holds: those given here and those added before the first Fill.
  explicit ObjectCache(std::vector<std::string> kinds = {}) : kinds_(std::move(kinds)) {}
  void AddKind(const std::string& kind);

  // Lists every kind from the store and merges the result (a fresh start, or a re-list after
  // the watch broke: objects the list lacks are dropped if the list is newer).
  Status Fill(Store* store);
  // One watch event, in revision order.
  void Apply(const WatchEvent& ev);

  ObjectPtr Get(const std::string& kind, const std::string& ns, const std::string& name) const;
  // Objects of `kind` in `ns` ("" for all) that `selector` matches.
  std::vector<ObjectPtr> List(const std::string& kind, const std::string& ns = "",
                              const LabelSelector* selector = nullptr) const;
  // Allocations labelled mentat.io/service=service in ns.
  std::vector<ObjectPtr> AllocationsOf(const std::string& ns, const std::string& service) const;
  bool Holds(const std::string& kind) const;

 private:
  void Put(const std::string& kind, const std::string& key, ObjectPtr obj);
  void Erase(const std::string& kind, const std::string& key);

  std::vector<std::string> kinds_;  // fixed once filled
  mutable std::shared_mutex mu_;
  std::map<std::string, std::map<std::string, ObjectPtr>> objects_;  // kind -> "ns/name" -> obj
  std::map<std::string, std::set<std::string>> by_service_;          // "ns/service" -> keys
};

}  // namespace mentat
