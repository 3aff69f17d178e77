// Follows one kind over the API the way informers do: list, then watch from the list's revision. After a
// disconnect (a server restart, a network blip) it watches again from the last revision it
// saw, in an event or a bookmark, so no change is lost. After 410 Gone (that revision was
// compacted away) it lists again and reports the difference as events: a caller may then
// see several changes to one object as one, but never misses the latest state.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "apis/client.h"

namespace mentat {

class ListWatcher {
 public:
  using Clock = std::chrono::steady_clock;
  // type is "ADDED", "MODIFIED" or "DELETED" (the object as last stored). Return false to stop.
  using OnEvent = std::function<bool(const std::string& type, const Json& obj)>;

  ListWatcher(ApiClient& client, std::string plural, RequestOptions options);

  // Stop at this time (Run then returns false), even in the middle of a watch.
  void set_deadline(Clock::time_point deadline) { deadline_ = deadline; }
  // Called with a one-line note when a watch breaks and is being resumed.
  void set_notice(std::function<void(const std::string&)> notice) { notice_ = std::move(notice); }
  // Stop when *stop becomes true (Run then returns false), even in the middle of a watch; a
  // wait between reconnects may finish first.
  void set_stop(const std::atomic<bool>* stop) { stop_ = stop; }
  // Runs before each watch but the first: what a client must redo after losing the server
  // (the agent fetches the server's key again and re-registers its node). While it fails, the
  // watch is not resumed; it is tried again with backoff.
  void set_before_resume(std::function<Status()> hook) { before_resume_ = std::move(hook); }

  // The first list. Errors are returned as they are: a server that cannot be reached at the
  // start is an error, not something to wait for.
  Result<std::vector<Json>> List();

  // Watches until `on_event` returns false (true) or the deadline passes or stop is set (false). Unavailable
  // servers and broken streams are retried with backoff; other errors (401, 403, 400) end it.
  Result<bool> Run(const OnEvent& on_event);

  // The current view, keyed "namespace/name".
  const std::map<std::string, Json>& objects() const { return objects_; }
  int64_t revision() const { return revision_; }

 private:
  static std::string Key(const Json& obj) { return NamespaceOf(obj) + "/" + NameOf(obj); }
  bool Expired() const { return (deadline_ && Clock::now() >= *deadline_) || (stop_ && *stop_); }
  // Waits `backoff` (less if the deadline is nearer), then doubles it up to 2 s.
  void Pause(std::chrono::milliseconds& backoff);
  // After 410: list again and report what changed since the view. False when a handler stopped.
  Result<bool> Relist(const OnEvent& on_event);

  ApiClient& client_;
  std::string plural_;
  RequestOptions options_;
  std::optional<Clock::time_point> deadline_;
  std::function<void(const std::string&)> notice_;
  const std::atomic<bool>* stop_ = nullptr;
  std::function<Status()> before_resume_;
  std::map<std::string, Json> objects_;
  int64_t revision_ = 0;
};

}  // namespace mentat
