#include "controllers/scheduler.h"

#include <algorithm>
#include <climits>
#include <tuple>

#include "controllers/node_controller.h"

namespace mentat {
namespace {

int64_t IntAt(const Json& obj, const char* field) {
  auto it = obj.find(field);
  return it != obj.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

}  // namespace

Resources RequestedResources(const Json& task_template, int64_t mhz_per_core) {
  const Json& r = task_template.value("resources", Json::object());
  Resources out;
  out.memory_mb = IntAt(r, "memory_mb");
  out.disk_mb = IntAt(r, "disk_mb");
  out.cpu_mhz = IntAt(r, "cpu_mhz");
  if (out.cpu_mhz == 0 && IntAt(r, "cpu_percent") > 0 && mhz_per_core > 0) {
    out.cpu_mhz = IntAt(r, "cpu_percent") * mhz_per_core / 100;
  }
  return out;
}

Scheduler::Scheduler(const std::vector<const Json*>& nodes, const std::vector<const Json*>& allocations,
                     std::chrono::milliseconds heartbeat_timeout) {
  auto now = std::chrono::system_clock::now();
  for (const Json* node : nodes) {
    const Json& n = *node;
    NodeInfo info;
    info.name = NameOf(n);
    info.labels = n.value("metadata", Json::object()).value("labels", Json::object());
    info.ready = NodeIsReady(n, heartbeat_timeout, now);
    const Json& st = n.value("status", Json::object());
    const Json drivers = st.value("drivers", Json::object());
    for (const auto& [driver, fp] : drivers.items()) {
      info.drivers[driver] = fp.is_object() && fp.value("healthy", false);
    }
    const Json& cap = st.value("capacity", Json::object());
    int64_t mhz = IntAt(cap, "cpu_mhz");
    mhz_[info.name] = mhz;
    info.capacity.cpu_mhz = IntAt(cap, "cpus") * mhz;
    info.capacity.memory_mb = IntAt(cap, "memory_mb");
    info.capacity.disk_mb = IntAt(cap, "disk_mb");
    nodes_.push_back(std::move(info));
  }
  std::sort(nodes_.begin(), nodes_.end(), [](const NodeInfo& a, const NodeInfo& b) { return a.name < b.name; });
  for (const Json* alloc : allocations) {
    const Json& a = *alloc;
    const Json& spec = a.value("spec", Json::object());
    std::string node = spec.value("nodeName", "");
    if (node.empty()) continue;
    Commit(node, NamespaceOf(a) + "/" + spec.value("service", ""), spec.value("task", Json::object()));
  }
}

void Scheduler::Commit(const std::string& node, const std::string& service, const Json& task_template) {
  for (auto& n : nodes_) {
    if (n.name != node) continue;
    Resources r = RequestedResources(task_template, mhz_[node]);
    n.used.memory_mb += r.memory_mb;
    n.used.cpu_mhz += r.cpu_mhz;
    n.used.disk_mb += r.disk_mb;
    n.per_service[service]++;
    return;
  }
}

std::string Scheduler::Place(const PlacementRequest& req, const Json& task_template, std::string* why_not) {
  // Feasibility: the first reason that rules each node out, counted per reason.
  std::vector<std::pair<std::string, int>> reasons;
  auto reject = [&](const std::string& reason) {
    for (auto& [r, n] : reasons) {
      if (r == reason) {
        ++n;
        return;
      }
    }
    reasons.push_back({reason, 1});
  };
  auto fits = [](int64_t want, int64_t used, int64_t capacity) {
    return want == 0 || capacity == 0 || used + want <= capacity;
  };
  const NodeInfo* best = nullptr;
  std::tuple<int, int64_t, std::string> best_rank;
  for (const auto& n : nodes_) {
    if (!n.ready) {
      reject("not ready");
      continue;
    }
    if (!req.allowed_nodes.empty() &&
        std::none_of(req.allowed_nodes.begin(), req.allowed_nodes.end(),
                     [&](const std::string& l) { return n.labels.contains(l); })) {
      std::string labels;
      for (const auto& l : req.allowed_nodes) labels += (labels.empty() ? "" : " or ") + l;
      reject("not labelled " + labels + " (profile " + req.profile + ")");
      continue;
    }
    auto d = n.drivers.find(req.driver);
    if (d == n.drivers.end() || !d->second) {
      reject("lack driver " + req.driver);
      continue;
    }
    Resources want = RequestedResources(task_template, mhz_.count(n.name) ? mhz_.at(n.name) : 0);
    if (!fits(want.memory_mb, n.used.memory_mb, n.capacity.memory_mb)) {
      reject("insufficient memory");
      continue;
    }
    if (!fits(want.cpu_mhz, n.used.cpu_mhz, n.capacity.cpu_mhz)) {
      reject("insufficient cpu");
      continue;
    }
    if (!fits(want.disk_mb, n.used.disk_mb, n.capacity.disk_mb)) {
      reject("insufficient disk");
      continue;
    }
    // Rank: spread the service, then pack (least memory left after placing), then by name.
    auto same = n.per_service.find(req.service);
    int spread = same == n.per_service.end() ? 0 : same->second;
    int64_t left = n.capacity.memory_mb == 0 ? INT64_MAX : n.capacity.memory_mb - n.used.memory_mb - want.memory_mb;
    std::tuple<int, int64_t, std::string> rank{spread, left, n.name};
    if (!best || rank < best_rank) {
      best = &n;
      best_rank = rank;
    }
  }
  if (best) return best->name;
  *why_not = "0/" + std::to_string(nodes_.size()) + " nodes available";
  if (nodes_.empty()) reasons.push_back({"no agent has registered", 0});
  for (size_t i = 0; i < reasons.size(); ++i) {
    *why_not += (i ? ", " : ": ") +
                (reasons[i].second ? std::to_string(reasons[i].second) + " " : "") + reasons[i].first;
  }
  return "";
}

}  // namespace mentat
