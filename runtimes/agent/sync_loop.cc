// The agent's view of its Allocations and the reconcile of its tasks: the sync loop follows the
// Allocations placed on this node through the shared list/watch client (apis/list_watch.h),
// the one `mt get -w` uses; the work loop reconciles one key at a time against that view.
#include <signal.h>

#include <spdlog/spdlog.h>

#include "apis/event.h"
#include "apis/list_watch.h"
#include "runtimes/agent/agent.h"

namespace mentat {
using namespace std::chrono_literals;

Status Agent::FetchServerKey() {
  MT_ASSIGN_OR_RETURN(std::string key, ServerKey::Fetch(*client_, opts_.node_name));
  if (!server_key_.Known()) spdlog::info("agent: node {} has its agent key", opts_.node_name);
  server_key_.Set(std::move(key));
  return {};
}

Status Agent::Connect() {
  // Each (re)connection fetches the key again: a server whose secret was replaced has ended
  // the watch, and hands out the new key.
  if (auto st = FetchServerKey(); !st) {
    return MakeError(st.error().code(), "fetching node " + opts_.node_name + "'s agent key: " + st.error().message());
  }
  if (auto st = RegisterNode(); !st) {
    return MakeError(st.error().code(), "registering node " + opts_.node_name + ": " + st.error().message());
  }
  return {};
}

void Agent::SyncLoop() {
  auto backoff = 100ms;
  auto retry_later = [&](const std::string& why) {
    spdlog::warn("agent: {}", why);
    std::this_thread::sleep_for(backoff);  // retry pacing, not a state wait
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, 5s);
  };
  RequestOptions ro;
  ro.label_selector = std::string(kLabelNode) + "=" + opts_.node_name;
  while (!stop_) {
    if (auto st = Connect(); !st) {
      retry_later(st.error().message());
      continue;
    }
    // The shared list/watch client: after a disconnect it resumes from the last revision it
    // saw (reconnecting first), and after 410 it lists again and reports the difference.
    ListWatcher allocations(*client_, "allocations", ro);
    allocations.set_stop(&stop_);
    allocations.set_before_resume([this] { return Connect(); });
    allocations.set_notice([](const std::string& note) { spdlog::info("agent: allocations: {}", note); });
    auto list = allocations.List();
    if (!list) {
      retry_later("listing allocations: " + list.error().message());
      continue;
    }
    backoff = 100ms;
    std::set<std::string> keys;
    {
      std::lock_guard<std::mutex> lock(mu_);
      desired_.clear();
      for (const auto& item : *list) desired_[KeyOfAlloc(item)] = item;
      synced_ = true;
      for (const auto& [k, v] : desired_) keys.insert(k);
      for (const auto& [k, v] : tasks_) keys.insert(k);
    }
    for (const auto& k : keys) queue_.Add(k);
    auto st = allocations.Run([this](const std::string& type, const Json& obj) {
      std::string key = KeyOfAlloc(obj);
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (type == "DELETED") {
          desired_.erase(key);
        } else {
          desired_[key] = obj;
        }
      }
      queue_.Add(key);
      return !stop_;
    });
    if (stop_) break;
    if (!st) spdlog::info("agent: watch ended ({}); listing again", st.error().message());
  }
}

void Agent::WorkLoop() {
  while (auto key = queue_.Get()) {
    auto st = Reconcile(*key);
    if (!st) {
      spdlog::warn("agent: reconcile {}: {}", *key, st.error().message());
      queue_.Done(*key);
      queue_.AddRateLimited(*key);
      continue;
    }
    queue_.Forget(*key);
    queue_.Done(*key);
  }
}

Status Agent::Reconcile(const std::string& key) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!synced_) return {};  // GC decisions need the full picture
  auto desired_it = desired_.find(key);
  // A copy: the watch may replace or erase the stored one while the lock is released.
  const Json alloc = desired_it == desired_.end() ? Json() : desired_it->second;
  bool want = alloc.is_object() && alloc.contains("metadata") &&
              !alloc["metadata"].contains("deletionTimestamp") &&
              alloc.value("spec", Json::object()).value("nodeName", "") == opts_.node_name;
  std::string uid = want ? alloc["metadata"].value("uid", "") : "";
  Json task_spec = alloc.is_object() ? alloc.value("spec", Json::object()).value("task", Json::object())
                                     : Json();
  std::string hash = alloc.is_object() ? SpecHash(task_spec) : "";

  MT_RETURN_IF_ERROR(StopOutdated(key, want, uid, hash, lock));
  if (!want) return {};

  auto spec = ServiceSpec::FromJson(task_spec);
  if (!spec) return std::unexpected(spec.error());
  LocalTask& t = TrackTask(key, alloc, *spec, hash);
  if (t.adopted_event_due) {
    t.adopted_event_due = false;
    EmitLocked(key, kEventNormal, "Adopted",
               "the agent on node " + opts_.node_name + " restarted and adopted the running task " +
                   "(driver " + t.driver + ", pid " + std::to_string(t.pid) + ") without restarting it");
  }
  if (!t.running && t.last_exit) ScheduleRestart(key, t);
  bool start_now = !t.running && (!t.last_exit || (t.restart_pending &&
                                                   std::chrono::steady_clock::now() >= t.restart_at));
  if (start_now) {
    MT_RETURN_IF_ERROR(StartTask(key, alloc, *spec, lock));
    if (!tasks_.count(key)) return {};  // stopped while it started
  } else if (!t.running && t.restart_pending) {
    // Not due yet: every pass asks for the wake-up again. The queue keeps one deadline per key,
    // the earliest, so the restart's own request can have been swallowed by a sooner one (a
    // rate-limited retry) that ran this pass early; without this the restart never came.
    queue_.AddAfter(key, t.restart_at - std::chrono::steady_clock::now());
  }
  return ReportStatus(key, alloc, lock);
}

Status Agent::StopOutdated(const std::string& key, bool want, const std::string& uid,
                           const std::string& hash, std::unique_lock<std::mutex>& lock) {
  auto task_it = tasks_.find(key);
  if (task_it == tasks_.end()) return {};
  if (want && task_it->second.alloc_uid == uid && task_it->second.spec_hash == hash) return {};
  LocalTask t = task_it->second;
  lock.unlock();
  if (Driver* d = DriverFor(t.driver)) {
    if (t.running) {
      spdlog::info("agent: stopping {} (pid {})", key, t.pid);
      MT_RETURN_IF_ERROR(d->Stop(t.handle.id, opts_.stop_grace, SIGTERM));
    }
    MT_RETURN_IF_ERROR(d->Destroy(t.handle.id, /*force=*/true));
  }
  lock.lock();
  tasks_.erase(key);
  last_status_.erase(key);
  lock.unlock();
  handles_.Remove(key);
  lock.lock();
  return {};
}

Status Agent::ReportStatus(const std::string& key, const Json& alloc,
                           std::unique_lock<std::mutex>& lock) {
  auto last = last_status_.find(key);
  Json status = TaskStatus(tasks_.at(key), opts_.node_name,
                           last != last_status_.end() ? last->second.value("conditions", Json::array())
                                                      : Json::array());
  if (last != last_status_.end() && last->second == status) return {};
  Json obj = {{"kind", "Allocation"},
              {"metadata", {{"name", NameOf(alloc)}, {"namespace", NamespaceOf(alloc)}}},
              {"status", status}};
  lock.unlock();
  RequestOptions ro;
  ro.ns = NamespaceOf(obj);
  auto res = client_->PutStatus("allocations", NameOf(obj), obj, ro);
  if (!res) {
    if (res.error().code() == Code::kNotFound) return {};  // deleted meanwhile: the watch will say
    return std::unexpected(res.error());
  }
  lock.lock();
  last_status_[key] = status;
  return {};
}

}  // namespace mentat
