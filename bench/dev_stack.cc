#include "bench/dev_stack.h"

#include <signal.h>

#include <cstdio>

namespace mentat::bench {

std::unique_ptr<DevStack> DevStack::Start(const std::string& dir, const std::vector<std::string>& extra_args) {
  std::unique_ptr<DevStack> s(new DevStack());
  const int port = e2e::FreePort();
  const std::string addr = "http://127.0.0.1:" + std::to_string(port);
  std::vector<std::string> argv = {e2e::Runfile("cmd/mentat-server/mentat-server"), "--dev", "--listen",
                                   "127.0.0.1:" + std::to_string(port), "--data-dir", dir + "/data",
                                   "--log-level", "warn"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  s->server_ = std::make_unique<e2e::Process>(argv, dir + "/server.log");
  if (!e2e::WaitFor([&] { return e2e::HttpGet(port, "/healthz").first == 200; }, std::chrono::seconds(20))) {
    fprintf(stderr, "server did not start:\n%s\n", s->server_->Log().c_str());
    return nullptr;
  }
  s->client_ = std::move(*ApiClient::Create(addr));
  s->watcher_ = std::move(*ApiClient::Create(addr));
  DevStack* self = s.get();
  s->watch_ = std::thread([self] {
    while (!self->stop_) {
      self->watcher_->Watch("services", 0, {}, [self](const Json& ev) {
        const Json& o = ev["object"];
        if (ev.value("type", "") == "MODIFIED" && o.value("status", Json::object()).value("readyReplicas", 0) >= 1) {
          std::lock_guard<std::mutex> lock(self->mu_);
          self->ready_at_.emplace(NameOf(o), Clock::now());
          self->cv_.notify_all();
        }
        return !self->stop_;
      }, &self->stop_);
    }
  });
  // Let the watch subscribe before the first measurement.
  e2e::WaitFor([&] { return e2e::HttpGet(port, "/healthz").first == 200; }, std::chrono::seconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  return s;
}

DevStack::~DevStack() {
  stop_ = true;
  if (watcher_) watcher_->CancelWatches();
  if (watch_.joinable()) watch_.join();
  if (server_) {
    server_->Signal(SIGTERM);
    server_->Wait(std::chrono::seconds(10));
  }
}

std::optional<DevStack::Clock::time_point> DevStack::AwaitReady(const std::string& name,
                                                                 std::chrono::seconds deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, deadline, [&] { return ready_at_.count(name) > 0; })) return std::nullopt;
  return ready_at_[name];
}

}  // namespace mentat::bench
