// What one reconcile of a Service means to do, as its plan step decided it from what it read
// (service_plan.cc). The apply step (service_apply.cc) carries it out and keeps `allocations`
// current with its own writes; the status step (service_status.cc) rolls the result up into
// the Service's status.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "apis/object.h"
#include "controllers/rollout.h"

namespace mentat {

struct ServicePlan {
  std::string key;  // "ns/name"
  std::string ns;
  std::string name;
  // The Service is gone: its allocations and revisions go too, and nothing else happens.
  bool service_gone = false;

  Json service;  // as read
  Json task_template;
  int64_t generation = 1;
  int count = 1;
  DeployPolicy policy;
  Json last_status;  // status as the last rollup left it
  Json rollout;      // status.rollout, reset when the spec is a new revision
  std::string stable_revision;
  Json revision;  // the ServiceRevision of the current template
  int64_t revision_number = 0;
  std::chrono::system_clock::time_point now;

  // The service's allocations by name. The plan leaves out those it deletes; apply adds and
  // replaces what it writes.
  std::map<std::string, Json> allocations;
  std::vector<std::string> beyond_count;  // slots at or past the count: deleted
  std::vector<Json> lost;                 // on a node that stopped heartbeating: placed anew
  // Which slots move to the current template now (their outdated allocations stay in
  // `allocations` until apply deletes them).
  RolloutPlan rollout_plan;

  // "revision N", for messages.
  std::string RevisionLabel() const { return "revision " + std::to_string(revision_number); }
  // "<service>-<slot>": the allocation that fills a slot.
  std::string SlotName(int index) const { return name + "-" + std::to_string(index); }
};

}  // namespace mentat
