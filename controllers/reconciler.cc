#include "controllers/reconciler.h"

#include <spdlog/spdlog.h>

namespace mentat {

ControllerManager::~ControllerManager() { Stop(); }

void ControllerManager::Add(ReconcilerPtr r) {
  auto c = std::make_unique<Controller>();
  c->reconciler = std::move(r);
  controllers_.push_back(std::move(c));
}

Status ControllerManager::Start(int workers_per_controller) {
  // Subscribe before listing keys, so no change falls between the two.
  MT_ASSIGN_OR_RETURN(watcher_, store_->Watch("", store_->CurrentRevision()));
  MT_RETURN_IF_ERROR(cache_.Fill(store_));
  for (auto& c : controllers_) {
    MT_ASSIGN_OR_RETURN(auto keys, c->reconciler->AllKeys());
    for (const auto& k : keys) c->queue.Add(k);
  }
  threads_.emplace_back([this] { WatchLoop(); });
  for (auto& c : controllers_) {
    for (int i = 0; i < workers_per_controller; ++i) {
      threads_.emplace_back([this, ptr = c.get()] { Worker(ptr); });
    }
  }
  return {};
}

void ControllerManager::Stop() {
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
      if (auto st = cache_.Fill(store_); !st) spdlog::warn("controllers: re-list: {}", st.error().message());
      for (auto& c : controllers_) {
        if (auto keys = c->reconciler->AllKeys()) {
          for (const auto& k : *keys) c->queue.Add(k);
        }
      }
      continue;
    }
    if (!ev->has_value()) continue;
    const WatchEvent& event = ***ev;
    if (spdlog::should_log(spdlog::level::debug)) {  // the arguments cost more than the check
      spdlog::debug("controllers: {} {} at revision {}", EventTypeName(event.type),
                    KeyOf(event.object).ToString(), event.revision);
    }
    cache_.Apply(event);
    for (auto& c : controllers_) {
      for (const auto& k : c->reconciler->KeysFor(event)) c->queue.Add(k);
    }
  }
}

void ControllerManager::Worker(Controller* c) {
  while (auto key = c->queue.Get()) {
    spdlog::debug("{}: reconciling {}", c->reconciler->Name(), *key);
    auto started = std::chrono::steady_clock::now();
    auto res = c->reconciler->Reconcile(*key);
    {
      std::lock_guard<std::mutex> lock(c->stats_mu);
      (res ? c->stats.successes : c->stats.errors)++;
      c->stats.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    }
    if (!res) {
      spdlog::warn("{}: reconcile {}: {}", c->reconciler->Name(), *key, res.error().message());
      c->queue.Done(*key);
      c->queue.AddRateLimited(*key);
      continue;
    }
    c->queue.Forget(*key);
    c->queue.Done(*key);
    if (res->requeue_after) c->queue.AddAfter(*key, *res->requeue_after);
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
