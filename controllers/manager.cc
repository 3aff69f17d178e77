#include "controllers/manager.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "controllers/retry_policy.h"

namespace mentat {

std::vector<std::string> WatchedKinds::All() const {
  std::vector<std::string> all{primary};
  all.insert(all.end(), owns.begin(), owns.end());
  all.insert(all.end(), watches.begin(), watches.end());
  return all;
}

bool WatchedKinds::Contains(const std::string& kind) const {
  auto all = All();
  return std::find(all.begin(), all.end(), kind) != all.end();
}

ControllerManager::ControllerManager(Store* store, LeaderGatePtr gate,
                                     ControllerManagerOptions opts)
    : store_(store), gate_(std::move(gate)), opts_(opts) {}

ControllerManager::~ControllerManager() { Stop(); }

void ControllerManager::Add(ReconcilerPtr r) {
  auto c = std::make_unique<Controller>();
  c->kinds = r->Kinds();
  for (const auto& kind : c->kinds.All()) cache_.AddKind(kind);
  c->reconciler = std::move(r);
  controllers_.push_back(std::move(c));
}

void ControllerManager::AddPeriodic(PeriodicRunnable p) { periodic_.push_back(std::move(p)); }

Status ControllerManager::Start() {
  // Subscribe before listing keys, so no change falls between the two.
  MT_ASSIGN_OR_RETURN(watcher_, store_->Watch("", store_->CurrentRevision()));
  MT_RETURN_IF_ERROR(cache_.Fill(store_));
  for (auto& c : controllers_) {
    MT_ASSIGN_OR_RETURN(auto keys, c->reconciler->AllKeys());
    for (const auto& k : keys) c->queue.Add(k);
  }
  threads_.emplace_back([this] { WatchLoop(); });
  for (auto& c : controllers_) {
    for (int i = 0; i < opts_.workers_per_controller; ++i) {
      threads_.emplace_back([this, ptr = c.get()] { Worker(ptr); });
    }
  }
  if (!periodic_.empty()) periodic_thread_ = std::thread([this] { RunPeriodic(); });
  return {};
}

void ControllerManager::Stop() {
  {
    std::lock_guard<std::mutex> lock(periodic_mu_);
    periodic_stop_ = true;
  }
  periodic_cv_.notify_all();
  if (periodic_thread_.joinable()) periodic_thread_.join();
  if (stop_.exchange(true)) return;
  if (watcher_) watcher_->Close();
  for (auto& c : controllers_) c->queue.ShutDown();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void ControllerManager::WatchLoop() {
  while (!stop_) {
    auto ev = watcher_->Next(std::chrono::milliseconds(500));
    if (!ev) {
      if (stop_) return;
      // Fell behind or the store closed the stream: re-subscribe and resync every key.
      spdlog::warn("controllers: watch ended ({}); resyncing", ev.error().message());
      auto w = store_->Watch("", store_->CurrentRevision());
      if (!w) return;
      watcher_ = std::move(*w);
      Resync();
      continue;
    }
    if (!ev->has_value()) continue;
    const WatchEvent& event = ***ev;
    if (spdlog::should_log(spdlog::level::debug)) {  // the arguments cost more than the check
      spdlog::debug("controllers: {} {} at revision {}", EventTypeName(event.type),
                    KeyOf(event.object).ToString(), event.revision);
    }
    cache_.Apply(event);
    const std::string kind = event.object.value("kind", "");
    for (auto& c : controllers_) {
      if (!c->kinds.Contains(kind)) continue;
      for (const auto& k : c->reconciler->KeysFor(event)) c->queue.Add(k);
    }
  }
}

void ControllerManager::Resync() {
  if (auto st = cache_.Fill(store_); !st) {
    spdlog::warn("controllers: re-list: {}", st.error().message());
  }
  for (auto& c : controllers_) {
    if (auto keys = c->reconciler->AllKeys()) {
      for (const auto& k : *keys) c->queue.Add(k);
    }
  }
}

void ControllerManager::Worker(Controller* c) {
  while (auto key = c->queue.Get()) {
    if (!gate_->MayWrite()) {
      // Not ours to write now: the key waits for the gate, its backoff untouched.
      c->queue.Done(*key);
      c->queue.AddAfter(*key, opts_.leader_recheck);
      continue;
    }
    ReconcileOne(c, *key);
  }
}

void ControllerManager::ReconcileOne(Controller* c, const std::string& key) {
  const std::string name = c->reconciler->Name();
  spdlog::debug("{}: reconciling {}", name, key);
  auto started = std::chrono::steady_clock::now();
  auto res = c->reconciler->Reconcile(key);
  const bool retry = res || RetryPolicyFor(res.error().code()) == RetryPolicy::kRetryWithBackoff;
  {
    std::lock_guard<std::mutex> lock(c->stats_mu);
    (res ? c->stats.successes : c->stats.errors)++;
    if (!retry) c->stats.not_retried++;
    c->stats.seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  }
  if (!res && retry) {
    spdlog::warn("{}: reconcile {}: {}", name, key, res.error().message());
    c->queue.Done(key);
    c->queue.AddRateLimited(key);
    return;
  }
  if (!res) {
    spdlog::warn("{}: reconcile {}: {} (not retried: {} needs a change, not another try)", name,
                 key, res.error().message(), res.error().Reason());
  }
  c->queue.Forget(key);
  c->queue.Done(key);
  if (res && res->requeue_after) c->queue.AddAfter(key, *res->requeue_after);
}

void ControllerManager::RunPeriodic() {
  using Clock = std::chrono::steady_clock;
  std::vector<Clock::time_point> due;
  for (const auto& p : periodic_) {
    due.push_back(Clock::now() +
                  (p.run_at_start ? Clock::duration{} : Clock::duration(p.interval)));
  }
  std::unique_lock<std::mutex> lock(periodic_mu_);
  while (true) {
    // The earliest due; of those due at once, the one added first.
    size_t next = std::min_element(due.begin(), due.end()) - due.begin();
    if (periodic_cv_.wait_until(lock, due[next], [this] { return periodic_stop_; })) return;
    lock.unlock();
    const bool may = periodic_[next].every_member || gate_->MayWrite();
    if (may) {
      spdlog::debug("controllers: running {}", periodic_[next].name);
      periodic_[next].run();
    }
    lock.lock();
    // One skipped because this server may not write is due again when it may: a new leader
    // runs it then, not an interval later.
    due[next] = Clock::now() + (may ? Clock::duration(periodic_[next].interval)
                                    : std::min<Clock::duration>(periodic_[next].interval, opts_.leader_recheck));
  }
}

std::vector<ControllerManager::ReconcileStats> ControllerManager::Stats() {
  std::vector<ReconcileStats> out;
  for (auto& c : controllers_) {
    std::lock_guard<std::mutex> lock(c->stats_mu);
    out.push_back(c->stats);
    out.back().controller = c->reconciler->Name();
  }
  return out;
}

std::vector<ControllerManager::QueueDepth> ControllerManager::QueueDepths() {
  std::vector<QueueDepth> out;
  for (auto& c : controllers_) out.push_back({c->reconciler->Name(), c->queue.Len()});
  return out;
}

}  // namespace mentat
