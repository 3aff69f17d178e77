// Watch fan-out: every open watch stream is a bounded queue that the state machine's published
// events are pushed to, in revision order. A stream that falls too far behind is closed (kGone)
// rather than buffered without bound or allowed to slow the writers down.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>

#include "store/store.h"

namespace mentat {

class WatchHub {
 public:
  // Each stream may lag `buffer` events before it is closed.
  explicit WatchHub(size_t buffer) : buffer_(buffer) {}
  ~WatchHub() { CloseAll("the server is shutting down"); }

  class Stream;
  // A new stream of the events of `kind` ("" = all kinds), not yet registered: the caller may
  // replay history into it (Push), then sets the revision publication takes over from
  // (SetMinRevision) and registers it, without publishing in between.
  std::shared_ptr<Stream> NewStream(const std::string& kind);
  void Register(std::shared_ptr<Stream> stream);
  // The caller's end of `stream`: closing or destroying it unregisters the stream.
  static WatcherPtr Handle(std::shared_ptr<Stream> stream);

  // Pushes `ev` to every registered stream (from the publishing thread: notify callbacks run
  // here).
  void Publish(const WatchEventPtr& ev);
  // Ends every stream (they return kUnavailable with `reason`).
  void CloseAll(const std::string& reason);

 private:
  void Unregister(Stream* stream);

  size_t buffer_;
  std::mutex mu_;
  std::list<std::shared_ptr<Stream>> streams_;
};

class WatchHub::Stream : public Watcher {
 public:
  Stream(WatchHub* hub, std::string kind, size_t limit)
      : hub_(hub), kind_(std::move(kind)), limit_(limit) {}
  ~Stream() override { Close(); }

  Result<std::optional<WatchEventPtr>> Next(std::chrono::milliseconds timeout) override;
  Result<std::optional<WatchEventPtr>> TryNext() override;
  void SetNotify(std::function<void()> notify) override;
  void Close() override;

  // Events at or below this revision were replayed, or are reflected in what the watcher
  // started from; set once before the stream is registered.
  void SetMinRevision(int64_t rev);
  // Queues `ev` if it is of this stream's kind and past its minimum revision.
  void Push(const WatchEventPtr& ev);
  void Shutdown(const std::string& reason);

 private:
  void Notify();
  // The next queued event, or the close error, or nullopt. Under mu_.
  Result<std::optional<WatchEventPtr>> PopLocked();

  std::mutex mu_;
  std::condition_variable cv_;
  WatchHub* hub_;
  std::string kind_;
  size_t limit_;
  std::deque<WatchEventPtr> queue_;
  std::function<void()> notify_;
  int64_t min_revision_ = 0;
  bool closed_ = false;
  Code close_code_ = Code::kUnavailable;
  std::string close_reason_;
};

}  // namespace mentat
