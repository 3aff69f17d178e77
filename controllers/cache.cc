#include "controllers/cache.h"

#include <algorithm>

namespace mentat {
namespace {

std::string KeyIn(const Json& obj) { return NamespaceOf(obj) + "/" + NameOf(obj); }

}  // namespace

bool ObjectCache::Holds(const std::string& kind) const {
  return std::find(kinds_.begin(), kinds_.end(), kind) != kinds_.end();
}

void ObjectCache::AddKind(const std::string& kind) {
  if (!Holds(kind)) kinds_.push_back(kind);
}

Status ObjectCache::Fill(Store* store) {
  for (const auto& kind : kinds_) {
    // This member's own state, as the watch that keeps the cache goes on from it.
    MT_ASSIGN_OR_RETURN(auto list, store->List(kind, {.local = true}));
    std::set<std::string> listed;
    std::unique_lock<std::shared_mutex> lock(mu_);
    for (auto& obj : list.items) {
      std::string key = KeyIn(obj);
      listed.insert(key);
      auto& objs = objects_[kind];
      auto current = objs.find(key);
      if (current != objs.end() && ResourceVersionOf(*current->second) >= ResourceVersionOf(obj)) continue;
      Put(kind, key, std::make_shared<const Json>(std::move(obj)));
    }
    // Gone by the list's revision, unless the cache has seen it written since.
    std::vector<std::string> gone;
    for (const auto& [key, obj] : objects_[kind]) {
      if (!listed.count(key) && ResourceVersionOf(*obj) <= list.revision) gone.push_back(key);
    }
    for (const auto& key : gone) Erase(kind, key);
  }
  return {};
}

void ObjectCache::Apply(const WatchEvent& ev) {
  if (ev.type == EventType::kBookmark) return;
  const std::string kind = ev.object.value("kind", "");
  if (!Holds(kind)) return;
  const std::string key = KeyIn(ev.object);
  std::unique_lock<std::shared_mutex> lock(mu_);
  auto& objs = objects_[kind];
  auto it = objs.find(key);
  if (it != objs.end() && ResourceVersionOf(*it->second) >= ev.revision) return;
  if (ev.type == EventType::kDeleted) {
    Erase(kind, key);
  } else {
    Put(kind, key, std::make_shared<const Json>(ev.object));
  }
}

void ObjectCache::Put(const std::string& kind, const std::string& key, ObjectPtr obj) {
  if (kind == "Allocation") {
    auto old = objects_[kind].find(key);
    if (old != objects_[kind].end()) {
      by_service_[NamespaceOf(*old->second) + "/" + LabelOf(*old->second, kLabelService)].erase(key);
    }
    by_service_[NamespaceOf(*obj) + "/" + LabelOf(*obj, kLabelService)].insert(key);
  }
  objects_[kind][key] = std::move(obj);
}

void ObjectCache::Erase(const std::string& kind, const std::string& key) {
  auto& objs = objects_[kind];
  auto it = objs.find(key);
  if (it == objs.end()) return;
  if (kind == "Allocation") {
    by_service_[NamespaceOf(*it->second) + "/" + LabelOf(*it->second, kLabelService)].erase(key);
  }
  objs.erase(it);
}

ObjectPtr ObjectCache::Get(const std::string& kind, const std::string& ns, const std::string& name) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto k = objects_.find(kind);
  if (k == objects_.end()) return nullptr;
  auto it = k->second.find(ns + "/" + name);
  return it == k->second.end() ? nullptr : it->second;
}

std::vector<ObjectPtr> ObjectCache::List(const std::string& kind, const std::string& ns,
                                         const LabelSelector* selector) const {
  std::vector<ObjectPtr> out;
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto k = objects_.find(kind);
  if (k == objects_.end()) return out;
  for (const auto& [key, obj] : k->second) {
    if (!ns.empty() && NamespaceOf(*obj) != ns) continue;
    if (selector && !selector->Matches(*obj)) continue;
    out.push_back(obj);
  }
  return out;
}

std::vector<ObjectPtr> ObjectCache::AllocationsOf(const std::string& ns, const std::string& service) const {
  std::vector<ObjectPtr> out;
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto idx = by_service_.find(ns + "/" + service);
  if (idx == by_service_.end()) return out;
  const auto& allocs = objects_.at("Allocation");
  for (const auto& key : idx->second) {
    auto it = allocs.find(key);
    if (it != allocs.end()) out.push_back(it->second);
  }
  return out;
}

}  // namespace mentat
