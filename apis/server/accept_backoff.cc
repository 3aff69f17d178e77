#include "apis/server/accept_backoff.h"

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

namespace mentat {
namespace {

// evhttp gives the listener's callbacks its own evhttp as their argument, so the error
// callback finds its AcceptBackoff here.
std::mutex registry_mu;
std::map<evhttp*, AcceptBackoff*>& Registry() {
  static auto* registry = new std::map<evhttp*, AcceptBackoff*>();
  return *registry;
}

}  // namespace

AcceptBackoff::AcceptBackoff(event_base* base, evhttp* http, evhttp_bound_socket* bound)
    : http_(http), listener_(evhttp_bound_socket_get_listener(bound)) {
  resume_ = evtimer_new(base, &AcceptBackoff::OnResume, this);
  {
    std::lock_guard<std::mutex> lock(registry_mu);
    Registry()[http] = this;
  }
  evconnlistener_set_error_cb(listener_, &AcceptBackoff::OnError);
}

AcceptBackoff::~AcceptBackoff() {
  {
    std::lock_guard<std::mutex> lock(registry_mu);
    Registry().erase(http_);
  }
  event_free(resume_);
}

void AcceptBackoff::OnError(evconnlistener*, void* http) {
  int err = errno;  // accept()'s, untouched since: the listener calls us right after it failed
  AcceptBackoff* self = nullptr;
  {
    std::lock_guard<std::mutex> lock(registry_mu);
    auto it = Registry().find(static_cast<evhttp*>(http));
    if (it != Registry().end()) self = it->second;
  }
  if (self) self->Pause(err);
}

void AcceptBackoff::Pause(int err) {
  evconnlistener_disable(listener_);
  timeval tv{static_cast<time_t>(pause_.count() / 1000),
             static_cast<suseconds_t>(pause_.count() % 1000 * 1000)};
  evtimer_add(resume_, &tv);
  log_.Warn(std::string("cannot accept connections: ") + strerror(err) +
            (err == EMFILE || err == ENFILE
                 ? " (out of file descriptors: raise the open-file limit or lower "
                   "--max-connections); pausing accept() for " +
                       std::to_string(pause_.count()) + " ms"
                 : "; pausing accept() for " + std::to_string(pause_.count()) + " ms"));
  pause_ = std::min(pause_ * 2, kLongestPause);
}

void AcceptBackoff::OnResume(int, short, void* arg) {
  evconnlistener_enable(static_cast<AcceptBackoff*>(arg)->listener_);
}

}  // namespace mentat
