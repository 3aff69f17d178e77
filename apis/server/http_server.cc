#include "apis/server/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include "apis/server/accept_backoff.h"
#include "apis/server/http_gate.h"
#include "apis/server/http_head.h"
#include "apis/server/memory_release.h"

namespace mentat {
namespace {

const char* MethodName(evhttp_cmd_type cmd) {
  switch (cmd) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_PATCH: return "PATCH";
    default: return "OTHER";
  }
}

// Hands a std::string's bytes to an evbuffer without copying them.
void AddString(evbuffer* buf, std::string&& s) {
  if (s.empty()) return;
  auto* owned = new std::string(std::move(s));
  evbuffer_add_reference(
      buf, owned->data(), owned->size(),
      [](const void*, size_t, void* p) { delete static_cast<std::string*>(p); }, owned);
}

// A body this large leaves pages behind that the allocator keeps (ReleaseMemorySoon).
constexpr size_t kLargeBody = 1 << 20;

void EnableThreads() {
  static bool done = [] {
    evthread_use_pthreads();
    return true;
  }();
  (void)done;
}

}  // namespace

std::string HttpRequest::Param(const std::string& name) const {
  auto it = params.find(name);
  return it == params.end() ? std::string() : it->second;
}

std::string HttpRequest::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

// ---------------------------------------------------------------------------------------------
// HttpStream
//
// How a stream ends. libevent's TLS bufferevent reports "the output drained" through a deferred
// callback that runs on the next loop turn and does not look at the buffer again. Whatever is
// written in between is still in the buffer when the report arrives, and the report runs the
// connection's current callback. After evhttp_send_reply_end that callback is evhttp's "the
// response is done": it frees the request and stops writing (keep-alive) or frees the connection,
// and the last chunk and the end are never sent. So a stream never ends right after a write
// within the same turn: the end goes out from our own drain callback once the buffer is empty
// (inside the report: none can be pending), or from a timer one turn after the buffer was seen
// empty with nothing more to write (any report pending then runs before the timer).

namespace {
constexpr auto kEndPoll = std::chrono::milliseconds(10);
}

HttpStream::~HttpStream() {
  if (timer_) event_free(timer_);
  if (end_timer_) event_free(end_timer_);
}

bool HttpStream::ClientGone() const {
  return req_ == nullptr || evhttp_request_get_connection(req_) == nullptr;
}

bool HttpStream::Write(const std::string& data) {
  if (!open()) return false;
  if (ClientGone()) {
    CloseForUser();
    Finish();
    return false;
  }
  evbuffer* buf = evbuffer_new();
  evbuffer_add(buf, data.data(), data.size());
  wrote_ = true;
  evhttp_send_reply_chunk_with_cb(
      req_, buf, [](evhttp_connection*, void* arg) { static_cast<HttpStream*>(arg)->OnDrained(); },
      this);
  evbuffer_free(buf);
  return true;
}

void HttpStream::OnDrained() {
  auto hold = shared_from_this();
  // A late report of an earlier drain: more has been written since, and its own report follows.
  if (Pending() > 0) return;
  if (ending_) return Finish();
  if (!drained_) return;
  auto fn = std::move(drained_);
  drained_ = nullptr;
  fn();
}

struct HttpStream::FileToSend {
  FileToSend(int f, uint64_t o, uint64_t n) : fd(f), offset(o), left(n) {}
  ~FileToSend() { ::close(fd); }
  int fd;
  uint64_t offset;
  uint64_t left;
};

void HttpStream::SendFile(int fd, uint64_t offset, uint64_t length) {
  SendPiece(std::make_shared<FileToSend>(fd, offset, length));
}

void HttpStream::SendPiece(const std::shared_ptr<FileToSend>& file) {
  if (!open()) return;
  if (file->left == 0) return End();
  std::string piece(static_cast<size_t>(std::min<uint64_t>(file->left, 1 << 20)), '\0');
  ssize_t n = ::pread(file->fd, piece.data(), piece.size(), static_cast<off_t>(file->offset));
  if (n <= 0) {
    // The client was promised more (Content-Length); it sees the body end short.
    spdlog::error("sending a file: read at offset {}: {}", file->offset,
                  n < 0 ? strerror(errno) : "end of file");
    return End();
  }
  piece.resize(static_cast<size_t>(n));
  file->offset += static_cast<uint64_t>(n);
  file->left -= static_cast<uint64_t>(n);
  WhenDrained([weak = weak_from_this(), file] {
    if (auto self = weak.lock()) self->SendPiece(file);
  });
  Write(piece);
}

size_t HttpStream::Pending() const {
  if (ClientGone()) return 0;
  bufferevent* bev = evhttp_connection_get_bufferevent(evhttp_request_get_connection(req_));
  return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

void HttpStream::End() {
  if (!open()) return;
  auto hold = shared_from_this();
  CloseForUser();
  ending_ = true;
  // Nothing more will be written: empty now, the buffer sees no drain after this turn.
  quiet_ = Pending() == 0;
  // With bytes pending after a Write, OnDrained ends it; the timer covers a client that leaves
  // first, and the other cases.
  ArmEndCheck(quiet_ ? std::chrono::milliseconds(0) : kEndPoll);
}

void HttpStream::CheckEnd() {
  if (!req_) return;
  if (ClientGone() || quiet_) return Finish();
  if (Pending() == 0) quiet_ = true;
  ArmEndCheck(quiet_ ? std::chrono::milliseconds(0) : kEndPoll);
}

void HttpStream::ArmEndCheck(std::chrono::milliseconds delay) {
  if (!end_timer_) {
    end_timer_ = event_new(
        server_->base_, -1, 0,
        [](int, short, void* arg) {
          auto self = static_cast<HttpStream*>(arg)->shared_from_this();
          self->CheckEnd();
        },
        this);
  }
  timeval tv{static_cast<time_t>(delay.count() / 1000),
             static_cast<suseconds_t>((delay.count() % 1000) * 1000)};
  event_add(end_timer_, &tv);
}

void HttpStream::CloseForUser() {
  if (ending_ || !req_) return;
  ending_ = true;
  if (timer_) event_del(timer_);
  auto hold = shared_from_this();
  auto hooks = std::move(on_close_);
  on_close_.clear();
  tick_ = nullptr;
  drained_ = nullptr;
  for (auto& fn : hooks) fn();
}

void HttpStream::Finish() {
  if (!req_) return;
  evhttp_request* req = std::exchange(req_, nullptr);
  if (end_timer_) event_del(end_timer_);
  // A request whose client is gone is detached from its connection; ending it frees it.
  evhttp_send_reply_end(req);
  auto hold = shared_from_this();
  server_->streams_.erase(this);
  server_->stream_count_ = server_->streams_.size();
}

void HttpStream::Post(std::function<void()> fn) {
  server_->Post([weak = weak_from_this(), fn = std::move(fn)] {
    auto self = weak.lock();
    if (self && self->open()) fn();
  });
}

void HttpStream::Every(std::chrono::milliseconds interval, std::function<void()> fn) {
  if (!open()) return;
  tick_ = std::move(fn);
  if (!timer_) {
    timer_ = event_new(server_->base_, -1, EV_PERSIST,
                       [](int, short, void* arg) {
                         auto self = static_cast<HttpStream*>(arg)->shared_from_this();
                         if (self->ClientGone()) {
                           self->CloseForUser();
                           return self->Finish();
                         }
                         auto fn = self->tick_;  // a copy: the tick may close the stream
                         if (fn) fn();
                       },
                       this);
  }
  timeval tv{static_cast<time_t>(interval.count() / 1000),
             static_cast<suseconds_t>((interval.count() % 1000) * 1000)};
  event_add(timer_, &tv);
}

void HttpStream::WhenDrained(std::function<void()> fn) { drained_ = std::move(fn); }

void HttpStream::OnClose(std::function<void()> fn) {
  if (!open()) return fn();
  on_close_.push_back(std::move(fn));
}

// ---------------------------------------------------------------------------------------------
// HttpServer

HttpServer::HttpServer(HttpServerOptions opts)
    : opts_(std::move(opts)), gate_(std::make_shared<ResponderGate>()) {
  gate_->server = this;
  error_body_ = [](int status, const std::string& message) {
    return std::string("{\"code\":") + std::to_string(status) + ",\"message\":\"" + message + "\"}\n";
  };
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Route(const std::string& method, const std::string& pattern, HttpHandler handler) {
  routes_.push_back({method, pattern, PathSegments(pattern), std::move(handler)});
}

void HttpServer::SetErrorBody(std::function<std::string(int, const std::string&)> body) {
  error_body_ = std::move(body);
}

namespace {

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  if (!e) return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

}  // namespace

void HttpServer::StreamBody(const std::string& method, const std::string& pattern,
                            uint64_t max_body_bytes, BodySinkFactory open) {
  streamed_.push_back({method, PathSegments(pattern), max_body_bytes, std::move(open)});
}

std::unique_ptr<ConnectionLimits> HttpServer::MakeLimits() const {
  size_t max_connections = opts_.limits.max_connections;
  rlimit nofile{};
  if (max_connections == 0) {
    getrlimit(RLIMIT_NOFILE, &nofile);
    max_connections = AutoMaxConnections(nofile.rlim_cur);
  }
  return std::make_unique<ConnectionLimits>(max_connections,
                                            opts_.limits.max_connections_per_client);
}

Status HttpServer::LoadTls() {
  if (opts_.tls_cert.empty() && opts_.tls_key.empty()) return {};
  if (opts_.tls_cert.empty() || opts_.tls_key.empty()) {
    return InvalidArgument("HTTPS needs both a certificate (--tls-cert) and its key (--tls-key)");
  }
  tls_ = SSL_CTX_new(TLS_server_method());
  SSL_CTX_set_min_proto_version(tls_, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(tls_, opts_.tls_cert.c_str()) != 1) {
    return InvalidArgument("--tls-cert " + opts_.tls_cert + ": " + OpenSslError());
  }
  if (SSL_CTX_use_PrivateKey_file(tls_, opts_.tls_key.c_str(), SSL_FILETYPE_PEM) != 1) {
    std::string err = OpenSslError();
    if (err.find("mismatch") != std::string::npos) {
      return InvalidArgument("--tls-key " + opts_.tls_key + " does not match the certificate " +
                             opts_.tls_cert);
    }
    return InvalidArgument("--tls-key " + opts_.tls_key + ": " + err);
  }
  if (SSL_CTX_check_private_key(tls_) != 1) {
    return InvalidArgument("--tls-key " + opts_.tls_key + " does not match the certificate " +
                           opts_.tls_cert);
  }
  return {};
}

Result<int> HttpServer::Listen() {
  // The socket is made here rather than by evhttp: SO_REUSEADDR for quick restarts but never
  // SO_REUSEPORT (a second server on the port would take half the connections); a full
  // backlog; and TCP_NODELAY, which accepted sockets inherit (small responses must not wait
  // for the client's delayed ACK).
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Internal(std::string("socket: ") + strerror(errno));
  int yes = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(opts_.port));
  if (inet_pton(AF_INET, opts_.host.c_str(), &addr.sin_addr) != 1) {
    ::close(fd);
    return InvalidArgument("cannot listen on \"" + opts_.host + "\": not an IPv4 address");
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd, SOMAXCONN) != 0) {
    int err = errno;
    ::close(fd);
    return Unavailable("cannot listen on " + opts_.host + ":" + std::to_string(opts_.port) + ": " +
                       strerror(err) +
                       (err == EADDRINUSE ? " (is another mentat-server running there?)" : ""));
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  evhttp_bound_socket* bound = evhttp_accept_socket_with_handle(http_, fd);
  if (!bound) {
    ::close(fd);
    return Internal("evhttp cannot accept on the listening socket");
  }
  backoff_ = std::make_unique<AcceptBackoff>(base_, http_, bound);

  return port;
}

Result<int> HttpServer::Start() {
  EnableThreads();
  MT_RETURN_IF_ERROR(LoadTls());
  base_ = event_base_new();
  if (!base_) return Internal("cannot create the event loop");
  http_ = evhttp_new(base_);
  wake_ = event_new(base_, -1, 0, &HttpServer::OnWake, this);

  admit_ = event_new(base_, -1, 0, &HttpServer::OnAdmit, this);
  release_ = evtimer_new(
      base_,
      [](int, short, void* self) {
        static_cast<HttpServer*>(self)->release_pending_ = false;
        ReleaseFreeMemory();
      },
      this);
  limits_ = MakeLimits();
  MT_ASSIGN_OR_RETURN(int port, Listen());

  // A declared body over our limit is refused by the gate, unread, with our JSON 413. Chunked
  // ones above it still arrive (up to 4x) so the answer is that 413 too, not libevent's HTML
  // one; beyond that the connection is refused outright.
  evhttp_set_max_body_size(http_, static_cast<ev_ssize_t>(opts_.max_body_bytes * 4));
  // The gate refuses longer heads; the slack is for the line it may add ("Content-Length: 0").
  evhttp_set_max_headers_size(http_, static_cast<ev_ssize_t>(opts_.max_header_bytes + 256));
  evhttp_set_timeout(http_, static_cast<int>(opts_.idle_timeout.count()));
  evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                        EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                        EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
  evhttp_set_gencb(http_, &HttpServer::OnRequest, this);
  evhttp_set_bevcb(http_, &HttpServer::NewConnection, this);

  running_ = true;
  {
    std::lock_guard<std::mutex> lock(post_mu_);
    accepting_posts_ = true;
  }
  for (int i = 0; i < std::max(1, opts_.workers); ++i) workers_.emplace_back([this] { WorkerLoop(); });
  loop_ = std::thread([this] { event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY); });
  return port;
}

void HttpServer::Stop() {
  if (!running_.load() && !loop_.joinable()) return;
  // Streams end cleanly (their terminating chunk) while the loop still runs.
  Post([this] {
    std::vector<std::shared_ptr<HttpStream>> open;
    for (auto& [p, s] : streams_) open.push_back(s);
    // No waiting for slow clients: evhttp frees every connection next.
    for (auto& s : open) {
      s->CloseForUser();
      s->Finish();
    }
  });
  {
    std::lock_guard<std::mutex> lock(jobs_mu_);
    stopping_workers_ = true;
  }
  jobs_cv_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
  Post([this] {
    backoff_.reset();  // before evhttp frees the listener it watches
    evhttp_free(http_);
    http_ = nullptr;
    event_base_loopbreak(base_);
  });
  running_ = false;
  if (loop_.joinable()) loop_.join();
  std::deque<std::function<void()>> dropped;
  {
    std::lock_guard<std::mutex> lock(post_mu_);
    accepting_posts_ = false;
    dropped.swap(posted_);
  }
  {
    std::lock_guard<std::mutex> lock(gate_->mu);
    gate_->server = nullptr;
  }
  backoff_.reset();
  if (http_) evhttp_free(http_);
  http_ = nullptr;
  streams_.clear();
  input_gates_.clear();
  input_gate_count_ = 0;
  fresh_.clear();
  for (event** e : {&wake_, &admit_, &release_}) {
    if (*e) event_free(*e);
    *e = nullptr;
  }
  if (base_) event_base_free(base_);
  base_ = nullptr;
  if (tls_) SSL_CTX_free(tls_);
  tls_ = nullptr;
}

bool HttpServer::Post(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(post_mu_);
  if (!accepting_posts_) return false;
  bool wake = posted_.empty();
  posted_.push_back(std::move(fn));
  if (wake) event_active(wake_, 0, 0);
  return true;
}

void HttpServer::OnWake(int, short, void* arg) {
  auto* self = static_cast<HttpServer*>(arg);
  std::deque<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(self->post_mu_);
    batch.swap(self->posted_);
  }
  for (auto& fn : batch) fn();
}

void HttpServer::OnRequest(evhttp_request* req, void* arg) {
  auto* self = static_cast<HttpServer*>(arg);
  auto arrived = std::chrono::steady_clock::now();
  HttpRequest r;
  r.method = MethodName(evhttp_request_get_command(req));
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* raw_path = uri ? evhttp_uri_get_path(uri) : nullptr;
  size_t n = 0;
  char* decoded = evhttp_uridecode(raw_path && *raw_path ? raw_path : "/", 0, &n);
  if (decoded) {
    r.path.assign(decoded, n);
    free(decoded);
  }
  const char* query = uri ? evhttp_uri_get_query(uri) : nullptr;
  if (query && *query) {
    evkeyvalq kv;
    kv.tqh_first = nullptr;
    kv.tqh_last = &kv.tqh_first;
    if (evhttp_parse_query_str(query, &kv) != 0) {
      evhttp_clear_headers(&kv);
      self->Reply(req, self->ErrorResponse(
                           400, "malformed query string: every parameter needs name=value"));
      return self->Observe("", r.method, 400, arrived);
    }
    for (evkeyval* h = kv.tqh_first; h; h = h->next.tqe_next) r.params.emplace(h->key, h->value);
    evhttp_clear_headers(&kv);
  }
  if (evhttp_connection* evcon = evhttp_request_get_connection(req)) {
    char* peer = nullptr;
    ev_uint16_t peer_port = 0;
    evhttp_connection_get_peer(evcon, &peer, &peer_port);
    if (peer) r.peer_address = peer;
  }
  evkeyvalq* in_headers = evhttp_request_get_input_headers(req);
  for (evkeyval* h = in_headers->tqh_first; h; h = h->next.tqe_next) {
    std::string name = h->key;
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    r.headers[name] = h->value;
  }
  if (InputGate* gate = self->GateOf(req)) {
    evhttp_request_set_on_complete_cb(req, &HttpServer::OnRequestComplete, self);
    if (gate->state == InputGate::State::kPassAll) self->ClearDeadline(*gate);  // its body is in
    auto ready = std::move(gate->ready);
    gate->ready.reset();
    if (ready && ready->method == r.method && ready->path == r.path) {
      if (ready->refusal) {
        int status = ready->refusal->status;
        self->Reply(req, std::move(*ready->refusal));
        return self->Observe("", r.method, status, arrived);
      }
      r.sink = std::move(ready->sink);
      r.body_bytes = ready->bytes;
      r.body_error = std::move(ready->error);
      if (ready->close) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
      }
    }
  }
  evbuffer* body = evhttp_request_get_input_buffer(req);
  size_t len = evbuffer_get_length(body);
  if (len > self->opts_.max_body_bytes) {
    self->Reply(req, self->ErrorResponse(413, BodyTooLarge(len, self->opts_.max_body_bytes)));
    return self->Observe("", r.method, 413, arrived);
  }
  r.body.resize(len);
  if (len) evbuffer_remove(body, r.body.data(), len);
  {
    std::lock_guard<std::mutex> lock(self->jobs_mu_);
    self->jobs_.push_back({req, std::move(r), arrived});
  }
  self->jobs_cv_.notify_one();
}

void HttpServer::WorkerLoop() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(jobs_mu_);
      jobs_cv_.wait(lock, [&] { return stopping_workers_ || !jobs_.empty(); });
      if (stopping_workers_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    HttpResponse response;
    std::string route;
    bool deferred = false;
    response.defer_ = [&] {
      deferred = true;
      return Responder(job.req, route, job.request.method, job.arrived);
    };
    try {
      Dispatch(job.request, response, &route);
    } catch (const std::exception& e) {
      if (deferred) {
        // The responder is out; answering here too would reply twice.
        spdlog::error("{} {}: handler threw after deferring its response: {}",
                      job.request.method, job.request.path, e.what());
        continue;
      }
      response = HttpResponse();
      response.status = 500;
      response.body = error_body_(500, std::string("internal error: ") + e.what());
    }
    if (spdlog::should_log(spdlog::level::debug)) {  // the arguments cost more than the check
      spdlog::debug("{} {} -> {}", job.request.method, job.request.path,
                    deferred ? "deferred" : std::to_string(response.status));
    }
    if (job.request.body.size() >= kLargeBody) ReleaseMemorySoon();
    if (deferred) continue;
    Responder(job.req, std::move(route), std::move(job.request.method), job.arrived)(
        std::move(response));
  }
}

HttpResponder HttpServer::Responder(evhttp_request* req, std::string route, std::string method,
                                    std::chrono::steady_clock::time_point arrived) {
  return [gate = gate_, req, route = std::move(route), method = std::move(method),
          arrived](HttpResponse response) {
    auto held = std::make_shared<HttpResponse>(std::move(response));
    std::lock_guard<std::mutex> lock(gate->mu);
    HttpServer* server = gate->server;
    if (!server) return;
    server->Post([server, req, held, route, method, arrived] {
      int status = held->status;
      server->Reply(req, std::move(*held));
      server->Observe(route, method, status, arrived);
    });
  };
}

void HttpServer::ReleaseMemorySoon() {
  Post([this] {
    if (release_pending_) return;
    release_pending_ = true;
    timeval tv{1, 0};
    evtimer_add(release_, &tv);
  });
}

HttpResponse HttpServer::ErrorResponse(int status, const std::string& message) const {
  HttpResponse res;
  res.status = status;
  try {
    res.body = error_body_(status, message);
  } catch (const std::exception&) {  // on the loop thread, an exception would end the server
    res.body = error_body_(status, ReasonPhrase(status));
  }
  return res;
}

std::string HttpServer::BodyTooLarge(uint64_t bytes, uint64_t max) {
  return "request body of " + std::to_string(bytes) + " bytes is over the limit of " +
         std::to_string(max) + " bytes";
}

uint64_t HttpServer::AcceptFailures() const { return backoff_ ? backoff_->failures() : 0; }

void HttpServer::Observe(const std::string& route, const std::string& method, int status,
                         std::chrono::steady_clock::time_point arrived) {
  if (!opts_.observe) return;
  opts_.observe(route, method, status,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - arrived).count());
}

void HttpServer::Dispatch(HttpRequest& request, HttpResponse& response, std::string* route_out) {
  auto segments = PathSegments(request.path);
  std::string method = request.method == "HEAD" ? "GET" : request.method;
  std::vector<std::string> allowed;
  for (const auto& route : routes_) {
    if (route.segments.size() != segments.size()) continue;
    std::vector<std::string> matches;
    bool ok = true;
    for (size_t i = 0; i < segments.size() && ok; ++i) {
      const std::string& p = route.segments[i];
      if (!p.empty() && p[0] == ':') {
        matches.push_back(segments[i]);
      } else {
        ok = p == segments[i];
      }
    }
    if (!ok) continue;
    if (route.method != method) {
      allowed.push_back(route.method);
      continue;
    }
    request.matches = std::move(matches);
    *route_out = route.pattern;
    route.handler(request, response);
    return;
  }
  if (!allowed.empty()) {
    response.status = 405;
    std::string list;
    for (const auto& m : allowed) list += (list.empty() ? "" : ", ") + m;
    response.headers.emplace_back("Allow", list);
    response.body = error_body_(405, request.method + " is not allowed on " + request.path +
                                         "; allowed: " + list);
    return;
  }
  response.status = 404;
  response.body = error_body_(404, "no route for " + request.method + " " + request.path);
}

void HttpServer::Reply(evhttp_request* req, HttpResponse response) {
  evkeyvalq* out = evhttp_request_get_output_headers(req);
  evhttp_add_header(out, "Content-Type", response.content_type.c_str());
  for (const auto& [k, v] : response.headers) evhttp_add_header(out, k.c_str(), v.c_str());
  // A client that left while its request was handled has a detached request: an ordinary
  // reply frees it.
  if (!response.stream || evhttp_request_get_connection(req) == nullptr) {
    evbuffer* buf = evbuffer_new();
    AddString(buf, std::move(response.body));
    evhttp_send_reply(req, response.status, ReasonPhrase(response.status), buf);
    evbuffer_free(buf);
    return;
  }
  evhttp_send_reply_start(req, response.status, ReasonPhrase(response.status));
  // A stream's client only reads: no read timeout, or a quiet watch would be cut off. The
  // write timeout stays, so a client that stops reading is still let go.
  if (bufferevent* bev = evhttp_connection_get_bufferevent(evhttp_request_get_connection(req))) {
    timeval write_tv{static_cast<time_t>(opts_.idle_timeout.count()), 0};
    bufferevent_set_timeouts(bev, nullptr, &write_tv);
  }
  auto stream = std::shared_ptr<HttpStream>(new HttpStream(this, req));
  streams_[stream.get()] = stream;
  stream_count_ = streams_.size();
  response.stream(stream);
}

}  // namespace mentat
