#include "store/watch_hub.h"

namespace mentat {

std::shared_ptr<WatchHub::Stream> WatchHub::NewStream(const std::string& kind) {
  return std::make_shared<Stream>(this, kind, buffer_);
}

void WatchHub::Register(std::shared_ptr<Stream> stream) {
  std::lock_guard<std::mutex> lock(mu_);
  streams_.push_back(std::move(stream));
}

WatcherPtr WatchHub::Handle(std::shared_ptr<Stream> stream) {
  // The caller owns the stream; the hub keeps a shared reference for fan-out.
  struct Handle : Watcher {
    std::shared_ptr<Stream> impl;
    explicit Handle(std::shared_ptr<Stream> i) : impl(std::move(i)) {}
    ~Handle() override { impl->Close(); }
    Result<std::optional<WatchEventPtr>> Next(std::chrono::milliseconds t) override {
      return impl->Next(t);
    }
    Result<std::optional<WatchEventPtr>> TryNext() override { return impl->TryNext(); }
    void SetNotify(std::function<void()> n) override { impl->SetNotify(std::move(n)); }
    void Close() override { impl->Close(); }
  };
  return WatcherPtr(new Handle(std::move(stream)));
}

void WatchHub::Publish(const WatchEventPtr& ev) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& s : streams_) s->Push(ev);
}

void WatchHub::CloseAll(const std::string& reason) {
  std::list<std::shared_ptr<Stream>> streams;
  {
    std::lock_guard<std::mutex> lock(mu_);
    streams.swap(streams_);
  }
  for (auto& s : streams) s->Shutdown(reason);
}

void WatchHub::Unregister(Stream* stream) {
  std::lock_guard<std::mutex> lock(mu_);
  streams_.remove_if([stream](const auto& p) { return p.get() == stream; });
}

Result<std::optional<WatchEventPtr>> WatchHub::Stream::PopLocked() {
  if (!queue_.empty()) {
    WatchEventPtr ev = std::move(queue_.front());
    queue_.pop_front();
    return std::optional<WatchEventPtr>(std::move(ev));
  }
  if (closed_) return MakeError(close_code_, close_reason_);
  return std::optional<WatchEventPtr>();
}

Result<std::optional<WatchEventPtr>> WatchHub::Stream::Next(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return !queue_.empty() || closed_; });
  return PopLocked();
}

Result<std::optional<WatchEventPtr>> WatchHub::Stream::TryNext() {
  std::lock_guard<std::mutex> lock(mu_);
  return PopLocked();
}

void WatchHub::Stream::SetNotify(std::function<void()> notify) {
  bool pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    notify_ = std::move(notify);
    pending = !queue_.empty() || closed_;
  }
  if (pending) Notify();
}

void WatchHub::Stream::Close() {
  WatchHub* hub = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!closed_) {
      closed_ = true;
      close_code_ = Code::kUnavailable;
      close_reason_ = "watch closed";
    }
    hub = hub_;
    hub_ = nullptr;
    notify_ = nullptr;  // the owner closed it: nobody to tell
  }
  cv_.notify_all();
  if (hub) hub->Unregister(this);
}

void WatchHub::Stream::SetMinRevision(int64_t rev) {
  std::lock_guard<std::mutex> lock(mu_);
  min_revision_ = rev;
}

void WatchHub::Stream::Push(const WatchEventPtr& ev) {
  if (!kind_.empty()) {
    auto k = ev->object.find("kind");
    if (k == ev->object.end() || !k->is_string() || k->get_ref<const std::string&>() != kind_)
      return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ev->revision <= min_revision_ || closed_) return;
    if (queue_.size() >= limit_) {
      // A stuck reader must not hold memory without bound or slow writers: cut it loose.
      queue_.clear();
      closed_ = true;
      close_code_ = Code::kGone;
      close_reason_ = "watcher fell more than " + std::to_string(limit_) +
                      " events behind and was closed; re-list and watch again";
    } else {
      queue_.push_back(ev);
    }
  }
  cv_.notify_one();
  Notify();
}

void WatchHub::Stream::Shutdown(const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    close_code_ = Code::kUnavailable;
    close_reason_ = reason;
    hub_ = nullptr;
  }
  cv_.notify_all();
  Notify();
}

void WatchHub::Stream::Notify() {
  std::function<void()> fn;
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn = notify_;
  }
  if (fn) fn();
}

}  // namespace mentat
