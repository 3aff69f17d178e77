// Keeps the HTTP server's listener from spinning when accept() fails for want of descriptors
// (EMFILE, ENFILE) or memory. Such a failure leaves the connection in the backlog, so a
// listener that simply retries fails again at once, forever, at full CPU, logging each time.
// Instead it stops accepting for a pause that doubles while the failures go on (50 ms up to
// 1 s), and one line per interval says how many there were.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "apis/server/rate_limited_log.h"

struct event;
struct event_base;
struct evconnlistener;
struct evhttp;
struct evhttp_bound_socket;

namespace mentat {

class AcceptBackoff {
 public:
  // Watches the listener of `bound`, a socket evhttp accepts on. Loop thread only, from here on.
  AcceptBackoff(event_base* base, evhttp* http, evhttp_bound_socket* bound);
  // Before evhttp (and with it the listener) is freed.
  ~AcceptBackoff();
  AcceptBackoff(const AcceptBackoff&) = delete;

  // A connection came through: the next failure pauses for the shortest time again.
  void Accepted() { pause_ = kFirstPause; }
  // accept() failures so far.
  uint64_t failures() const { return log_.count(); }

 private:
  static constexpr std::chrono::milliseconds kFirstPause{50};
  static constexpr std::chrono::milliseconds kLongestPause{1000};
  static void OnError(evconnlistener* listener, void* http);
  static void OnResume(int, short, void* self);
  void Pause(int err);

  evhttp* http_;
  evconnlistener* listener_;
  event* resume_;
  std::chrono::milliseconds pause_ = kFirstPause;
  RateLimitedLog log_;
};

}  // namespace mentat
