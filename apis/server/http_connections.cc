// HttpServer's connections: admission under the caps (HttpLimits), and the deadlines that end
// a slow client's head or body, or a refused one's leftovers.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <openssl/ssl.h>

#include "apis/server/accept_backoff.h"
#include "apis/server/http_gate.h"
#include "apis/server/http_head.h"

namespace mentat {
namespace {

using Gate = HttpServer::InputGate;

// How long a connection whose rest of input is dropped stays open after its answer, so that the
// client reads the answer before the close (a close with unread input resets the connection).
constexpr std::chrono::seconds kLinger{2};

std::string PeerOf(evutil_socket_t fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (fd < 0 || getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "unknown";
  char buf[INET6_ADDRSTRLEN] = "";
  const void* addr = ss.ss_family == AF_INET6
                         ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr)
                         : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&ss)->sin_addr);
  return inet_ntop(ss.ss_family, addr, buf, sizeof(buf)) ? buf : "unknown";
}

void AddTimer(event* timer, std::chrono::milliseconds after) {
  timeval tv{static_cast<time_t>(after.count() / 1000),
             static_cast<suseconds_t>(after.count() % 1000 * 1000)};
  evtimer_add(timer, &tv);
}

}  // namespace

bufferevent* HttpServer::NewConnection(event_base* base, void* arg) {
  auto* self = static_cast<HttpServer*>(arg);
  bufferevent* bev;
  if (self->tls_) {
    // The socket is set later by evhttp; the TLS handshake runs as the server side.
    bev = bufferevent_openssl_socket_new(base, -1, SSL_new(self->tls_), BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE);
  } else {
    bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
  }
  if (!bev) return bev;
  // The gate sees each read before evhttp's read callback does (evbuffer callbacks run inside
  // the read).
  auto gate = std::make_unique<InputGate>();
  gate->server = self;
  gate->bev = bev;
  gate->held = evbuffer_new();
  gate->staged = evbuffer_new();
  gate->timer = evtimer_new(base, &HttpServer::OnDeadline, gate.get());
  gate->entry = evbuffer_add_cb(bufferevent_get_input(bev), &HttpServer::OnInput, gate.get());
  self->input_gates_[bev] = std::move(gate);
  self->input_gate_count_ = self->input_gates_.size();
  // evhttp gives the bufferevent its socket and callbacks after this returns; the admission
  // runs next, before the loop reads from any socket.
  self->fresh_.push_back(bev);
  event_active(self->admit_, 0, 0);
  if (self->backoff_) self->backoff_->Accepted();
  return bev;
}

void HttpServer::OnAdmit(int, short, void* arg) {
  auto* self = static_cast<HttpServer*>(arg);
  auto fresh = std::move(self->fresh_);
  self->fresh_.clear();
  for (bufferevent* bev : fresh) {
    auto it = self->input_gates_.find(bev);
    if (it != self->input_gates_.end()) self->Admit(*it->second);
  }
}

void HttpServer::Admit(InputGate& g) {
  void* cbarg = nullptr;
  bufferevent_getcb(g.bev, nullptr, nullptr, nullptr, &cbarg);
  g.evcon = static_cast<evhttp_connection*>(cbarg);
  if (!g.evcon) return;
  evhttp_connection_set_closecb(g.evcon, &HttpServer::OnConnectionClose, &g);
  g.peer = PeerOf(bufferevent_getfd(g.bev));
  auto verdict = limits_->Admit(g.peer);
  if (verdict == ConnectionLimits::Verdict::kAdmit) {
    g.admitted = true;
    open_connections_ = limits_->open();
    return SetHeadDeadline(g);
  }
  bool in_all = verdict == ConnectionLimits::Verdict::kTooManyInAll;
  std::string why =
      in_all ? "the server has " + std::to_string(limits_->max_total()) +
                   " connections open, its most (--max-connections)"
             : "this client has " + std::to_string(limits_->max_per_client()) +
                   " connections open, its most (--max-connections-per-client)";
  RefuseConnection(g, in_all ? 503 : 429, why);
}

void HttpServer::RefuseConnection(InputGate& g, int status, const std::string& why) {
  ++refused_connections_;
  refused_log_.Warn("refused a connection from " + g.peer + ": " + why);
  evutil_socket_t fd = bufferevent_getfd(g.bev);
  if (!tls_ && fd >= 0) {
    // Written straight to the new socket: the answer is small and its buffer empty. What the
    // client sent already is read first, so that the close does not reset the connection.
    char scratch[4096];
    while (recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT) > 0) {
    }
    std::string body = error_body_(status, why);
    std::string answer = "HTTP/1.1 " + std::to_string(status) + " " + ReasonPhrase(status) +
                         "\r\nContent-Type: application/json\r\nContent-Length: " +
                         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    (void)send(fd, answer.data(), answer.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  }
  evhttp_connection_free(g.evcon);  // its close callback drops the gate
}

void HttpServer::OnConnectionClose(evhttp_connection*, void* arg) {
  auto* g = static_cast<InputGate*>(arg);
  HttpServer* self = g->server;
  evbuffer_remove_cb_entry(bufferevent_get_input(g->bev), g->entry);
  if (g->admitted) self->limits_->Release(g->peer);
  self->open_connections_ = self->limits_->open();
  // An upload still in progress ends here: its sink is dropped, and with it what it wrote.
  self->input_gates_.erase(g->bev);
  self->input_gate_count_ = self->input_gates_.size();
}

HttpServer::InputGate* HttpServer::GateOf(evhttp_request* req) {
  evhttp_connection* evcon = evhttp_request_get_connection(req);
  if (!evcon) return nullptr;
  auto it = input_gates_.find(evhttp_connection_get_bufferevent(evcon));
  return it == input_gates_.end() ? nullptr : it->second.get();
}

void HttpServer::SetHeadDeadline(InputGate& g) {
  g.deadline = InputGate::Deadline::kHead;
  AddTimer(g.timer, opts_.limits.header_timeout);
}

void HttpServer::SetBodyDeadline(InputGate& g, uint64_t bytes) {
  g.deadline = InputGate::Deadline::kBody;
  uint64_t rate = std::max<uint64_t>(1, opts_.limits.min_body_rate);
  AddTimer(g.timer, opts_.limits.header_timeout + std::chrono::milliseconds(bytes * 1000 / rate));
}

void HttpServer::SetLingerDeadline(InputGate& g) {
  g.deadline = InputGate::Deadline::kLinger;
  AddTimer(g.timer, kLinger);
}

void HttpServer::ClearDeadline(InputGate& g) {
  if (g.deadline == InputGate::Deadline::kNone) return;
  g.deadline = InputGate::Deadline::kNone;
  evtimer_del(g.timer);
}

void HttpServer::OnDeadline(int, short, void* arg) {
  auto* g = static_cast<InputGate*>(arg);
  HttpServer* self = g->server;
  if (!g->evcon) return;
  if (g->deadline != InputGate::Deadline::kLinger) {
    bool head = g->deadline == InputGate::Deadline::kHead;
    ++self->timed_out_connections_;
    self->timeout_log_.Warn(
        "closed a connection from " + g->peer + ": its request " + (head ? "head" : "body") +
        " was not in after " +
        (head ? std::to_string(self->opts_.limits.header_timeout.count()) + " s (--header-timeout)"
              : "the time --min-body-rate allows"));
  }
  // Nothing touches the gate after this: the close callback frees it.
  evhttp_connection_free(g->evcon);
}

}  // namespace mentat
