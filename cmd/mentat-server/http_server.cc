#include "cmd/mentat-server/http_server.h"

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

namespace mentat {
namespace {

const char* Reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return status < 400 ? "OK" : "Error";
  }
}

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

std::vector<std::string> Segments(const std::string& path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    out.push_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

// Hands a std::string's bytes to an evbuffer without copying them.
void AddString(evbuffer* buf, std::string&& s) {
  if (s.empty()) return;
  auto* owned = new std::string(std::move(s));
  evbuffer_add_reference(
      buf, owned->data(), owned->size(),
      [](const void*, size_t, void* p) { delete static_cast<std::string*>(p); }, owned);
}

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

HttpStream::~HttpStream() {
  if (timer_) event_free(timer_);
}

bool HttpStream::ClientGone() const {
  return req_ == nullptr || evhttp_request_get_connection(req_) == nullptr;
}

bool HttpStream::Write(const std::string& data) {
  if (!req_) return false;
  if (ClientGone()) {
    Close(/*send_end=*/true);
    return false;
  }
  evbuffer* buf = evbuffer_new();
  evbuffer_add(buf, data.data(), data.size());
  evhttp_send_reply_chunk_with_cb(
      req_, buf,
      [](evhttp_connection*, void* arg) {
        auto* self = static_cast<HttpStream*>(arg);
        if (!self->drained_) return;
        auto hold = self->shared_from_this();
        auto fn = std::move(self->drained_);
        self->drained_ = nullptr;
        fn();
      },
      this);
  evbuffer_free(buf);
  return true;
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
  if (!req_) return;
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

void HttpStream::End() { Close(/*send_end=*/true); }

void HttpStream::Close(bool send_end) {
  if (!req_) return;
  evhttp_request* req = req_;
  req_ = nullptr;
  // A request whose client is gone is detached from its connection; ending it frees it.
  if (send_end) evhttp_send_reply_end(req);
  if (timer_) event_del(timer_);
  auto hold = shared_from_this();
  auto hooks = std::move(on_close_);
  on_close_.clear();
  tick_ = nullptr;
  drained_ = nullptr;
  server_->streams_.erase(this);
  server_->stream_count_ = server_->streams_.size();
  for (auto& fn : hooks) fn();
}

void HttpStream::Post(std::function<void()> fn) {
  server_->Post([weak = weak_from_this(), fn = std::move(fn)] {
    auto self = weak.lock();
    if (self && self->open()) fn();
  });
}

void HttpStream::Every(std::chrono::milliseconds interval, std::function<void()> fn) {
  if (!req_) return;
  tick_ = std::move(fn);
  if (!timer_) {
    timer_ = event_new(server_->base_, -1, EV_PERSIST,
                       [](int, short, void* arg) {
                         auto self = static_cast<HttpStream*>(arg)->shared_from_this();
                         if (self->ClientGone()) return self->Close(/*send_end=*/true);
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
  if (!req_) return fn();
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
  routes_.push_back({method, pattern, Segments(pattern), std::move(handler)});
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

// ---------------------------------------------------------------------------------------------
// The input gate of streamed routes (StreamBody). Loop thread only.

struct HttpServer::InputGate {
  enum class State {
    kPeek,     // a request starts here and evhttp has none of it: read its head first
    kPass,     // evhttp reads this request on its own
    kSpool,    // a streamed body goes to the sink; evhttp waits for the head until it is in
    kSwallow,  // a body refused unread: drop all input until the connection closes
  };
  // What the request that evhttp dispatches next on this connection carries.
  struct Upload {
    std::string method;
    std::string path;
    BodySinkPtr sink;
    uint64_t bytes = 0;
    std::optional<Error> error;
    bool close = false;  // its body was not read: the connection cannot go on
  };

  ~InputGate() {
    if (held) evbuffer_free(held);
  }

  HttpServer* server = nullptr;
  bufferevent* bev = nullptr;
  evbuffer_cb_entry* entry = nullptr;
  evhttp_connection* evcon = nullptr;  // known from the first input on
  State state = State::kPeek;
  evbuffer* held = nullptr;  // the start of a head, kept from evhttp until the gate has all of it
  bool busy = false;         // inside OnInput: the gate's own changes to the buffer call it again
  std::string head;          // kSpool: the bodiless head evhttp gets once the body is in
  uint64_t remaining = 0;    // kSpool: body bytes still to come
  Upload upload;             // kSpool: filled in as the body arrives
  std::optional<Upload> ready;
};

namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// The path (percent-decoded) and query of a request target, as evhttp decodes them.
bool DecodeTarget(const std::string& target, std::string* path,
                  std::multimap<std::string, std::string>* params) {
  evhttp_uri* uri = evhttp_uri_parse_with_flags(target.c_str(), EVHTTP_URI_NONCONFORMANT);
  if (!uri) return false;
  const char* raw = evhttp_uri_get_path(uri);
  size_t n = 0;
  char* decoded = evhttp_uridecode(raw && *raw ? raw : "/", 0, &n);
  bool ok = decoded != nullptr;
  if (decoded) {
    path->assign(decoded, n);
    free(decoded);
  }
  const char* query = evhttp_uri_get_query(uri);
  if (ok && query && *query) {
    evkeyvalq kv;
    kv.tqh_first = nullptr;
    kv.tqh_last = &kv.tqh_first;
    ok = evhttp_parse_query_str(query, &kv) == 0;
    for (evkeyval* h = kv.tqh_first; ok && h; h = h->next.tqe_next) {
      params->emplace(h->key, h->value);
    }
    evhttp_clear_headers(&kv);
  }
  evhttp_uri_free(uri);
  return ok;
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
  if (!bev || self->streamed_.empty()) return bev;
  // The gate sees each read before evhttp's read callback does (evbuffer callbacks run inside
  // the read). A gate left by a connection whose close it never saw (one that sent nothing)
  // is replaced here when its address is reused.
  auto gate = std::make_unique<InputGate>();
  gate->server = self;
  gate->bev = bev;
  gate->entry = evbuffer_add_cb(bufferevent_get_input(bev), &HttpServer::OnInput, gate.get());
  self->input_gates_[bev] = std::move(gate);
  self->input_gate_count_ = self->input_gates_.size();
  return bev;
}

void HttpServer::OnInput(evbuffer* in, const evbuffer_cb_info* info, void* arg) {
  auto* g = static_cast<InputGate*>(arg);
  if (g->busy || info->n_added == 0) return;
  g->busy = true;
  if (!g->evcon) {
    // evhttp set its callbacks, with the connection as their argument, before it read.
    void* cbarg = nullptr;
    bufferevent_getcb(g->bev, nullptr, nullptr, nullptr, &cbarg);
    if (cbarg) {
      g->evcon = static_cast<evhttp_connection*>(cbarg);
      evhttp_connection_set_closecb(g->evcon, &HttpServer::OnConnectionClose, g);
    }
  }
  switch (g->state) {
    case InputGate::State::kPass:
      break;
    case InputGate::State::kSwallow:
      evbuffer_drain(in, evbuffer_get_length(in));
      break;
    case InputGate::State::kSpool:
      g->server->Spool(*g, in);
      break;
    case InputGate::State::kPeek:
      g->server->Peek(*g, in);
      break;
  }
  g->busy = false;
}

void HttpServer::OnConnectionClose(evhttp_connection*, void* arg) {
  auto* g = static_cast<InputGate*>(arg);
  HttpServer* self = g->server;
  evbuffer_remove_cb_entry(bufferevent_get_input(g->bev), g->entry);
  // An upload still in progress ends here: its sink is dropped, and with it what it wrote.
  self->input_gates_.erase(g->bev);
  self->input_gate_count_ = self->input_gates_.size();
}

void HttpServer::OnRequestComplete(evhttp_request* req, void* arg) {
  auto* self = static_cast<HttpServer*>(arg);
  evhttp_connection* evcon = evhttp_request_get_connection(req);
  if (!evcon) return;
  auto it = self->input_gates_.find(evhttp_connection_get_bufferevent(evcon));
  if (it == self->input_gates_.end()) return;
  InputGate& g = *it->second;
  if (g.state == InputGate::State::kSwallow) return;
  // The next request starts with the next byte, unless some of it is already evhttp's (sent
  // before this answer): then it goes by unseen, under the ordinary body limit.
  g.state = evbuffer_get_length(bufferevent_get_input(g.bev)) == 0 ? InputGate::State::kPeek
                                                                   : InputGate::State::kPass;
}

void HttpServer::Peek(InputGate& g, evbuffer* in) {
  using State = InputGate::State;
  if (g.held && evbuffer_get_length(g.held) > 0) evbuffer_prepend_buffer(in, g.held);
  g.ready.reset();  // an upload whose head evhttp refused never reached a handler
  size_t len = evbuffer_get_length(in);
  evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, nullptr);
  if (end.pos < 0 && len < opts_.max_header_bytes) {
    // Not all of the head yet: evhttp must not start on it before the gate has seen it.
    if (!g.held) g.held = evbuffer_new();
    evbuffer_add_buffer(g.held, in);
    return;
  }
  g.state = State::kPass;
  if (end.pos < 0 || static_cast<size_t>(end.pos) + 4 > opts_.max_header_bytes) return;
  size_t head_len = static_cast<size_t>(end.pos) + 4;
  std::string head(head_len, '\0');
  evbuffer_copyout(in, head.data(), head_len);

  // The request line: METHOD TARGET VERSION.
  size_t eol = head.find("\r\n");
  std::string line = head.substr(0, eol);
  size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
  if (sp1 == std::string::npos || sp2 == sp1) return;
  HttpRequest r;
  r.method = line.substr(0, sp1);
  if (!DecodeTarget(line.substr(sp1 + 1, sp2 - sp1 - 1), &r.path, &r.params)) return;
  auto segments = Segments(r.path);
  const StreamedRoute* route = nullptr;
  for (const auto& s : streamed_) {
    if (s.method != r.method || s.segments.size() != segments.size()) continue;
    bool ok = true;
    for (size_t i = 0; i < segments.size() && ok; ++i) {
      if (!s.segments[i].empty() && s.segments[i][0] == ':') {
        r.matches.push_back(segments[i]);
      } else {
        ok = s.segments[i] == segments[i];
      }
    }
    if (ok) {
      route = &s;
      break;
    }
    r.matches.clear();
  }
  if (!route) return;

  // An upload. Its headers, and the head evhttp will get instead: the same, with no body.
  std::string rewritten = line + "\r\n";
  std::optional<Error> refused;
  int lengths = 0;
  std::string length;
  size_t pos = eol + 2;
  while (pos < head_len - 2) {
    size_t next = head.find("\r\n", pos);
    std::string h = head.substr(pos, next - pos);
    pos = next + 2;
    size_t colon = h.find(':');
    if (h.empty() || h[0] == ' ' || h[0] == '\t' || colon == std::string::npos) {
      refused = Error(Code::kInvalidArgument, "malformed header line in an upload: \"" +
                                                  h.substr(0, 80) + "\"");
      continue;
    }
    std::string name = Lower(Trim(h.substr(0, colon)));
    std::string value = Trim(h.substr(colon + 1));
    r.headers[name] = value;
    if (name == "content-length") {
      ++lengths;
      if (lengths > 1 && value != length) {
        refused = Error(Code::kInvalidArgument, "two different Content-Length headers");
      }
      length = value;
      continue;
    }
    if (name == "transfer-encoding") {
      refused = Error(Code::kInvalidArgument,
                      "send the body with a Content-Length: uploads take no Transfer-Encoding");
      continue;
    }
    if (name == "expect") continue;  // the gate answers no 100 Continue; the client goes on
    rewritten += h + "\r\n";
  }
  rewritten += "Content-Length: 0\r\n\r\n";
  uint64_t bytes = 0;
  if (!refused && lengths == 0) {
    refused = Error(Code::kInvalidArgument, "an upload needs a Content-Length header");
  }
  if (!refused) {
    bool digits = !length.empty() && length.size() <= 19 &&
                  std::all_of(length.begin(), length.end(),
                              [](char c) { return c >= '0' && c <= '9'; });
    if (!digits) {
      refused = Error(Code::kInvalidArgument, "Content-Length \"" + length.substr(0, 40) +
                                                  "\" is not a byte count");
    } else {
      bytes = std::stoull(length);
      if (bytes > route->max_body_bytes) {
        refused = Error(Code::kTooLarge, "request body of " + std::to_string(bytes) +
                                             " bytes is over the limit of " +
                                             std::to_string(route->max_body_bytes) + " bytes");
      }
    }
  }
  evbuffer_drain(in, head_len);
  InputGate::Upload up;
  up.method = r.method;
  up.path = r.path;
  up.bytes = bytes;
  if (refused) {
    // The body is not read, so the connection cannot go on: the answer closes it, and all that
    // arrives until then is dropped (never taken for a next request).
    up.error = std::move(refused);
    up.close = true;
    g.ready = std::move(up);
    g.state = State::kSwallow;
    evbuffer_drain(in, evbuffer_get_length(in));
    evbuffer_add(in, rewritten.data(), rewritten.size());
    return;
  }
  auto sink = route->open(r);
  if (sink) {
    up.sink = std::move(*sink);
  } else {
    up.error = sink.error();  // answered once the body has been read and dropped
  }
  g.upload = std::move(up);
  g.head = std::move(rewritten);
  g.remaining = bytes;
  g.state = State::kSpool;
  Spool(g, in);
}

void HttpServer::Spool(InputGate& g, evbuffer* in) {
  while (g.remaining > 0 && evbuffer_get_length(in) > 0) {
    evbuffer_iovec v;
    if (evbuffer_peek(in, -1, nullptr, &v, 1) < 1) break;
    size_t n = static_cast<size_t>(std::min<uint64_t>(v.iov_len, g.remaining));
    if (g.upload.sink) {
      if (auto st = g.upload.sink->Write(static_cast<const char*>(v.iov_base), n); !st) {
        g.upload.error = st.error();
        g.upload.sink.reset();  // the rest is read and dropped
      }
    }
    evbuffer_drain(in, n);
    g.remaining -= n;
  }
  if (g.remaining > 0) return;
  // All of the body is in: evhttp gets the head now, ahead of whatever followed the body.
  g.ready = std::move(g.upload);
  g.upload = InputGate::Upload();
  g.state = InputGate::State::kPass;
  evbuffer_prepend(in, g.head.data(), g.head.size());
  g.head.clear();
}

void HttpServer::StreamBody(const std::string& method, const std::string& pattern,
                            uint64_t max_body_bytes, BodySinkFactory open) {
  streamed_.push_back({method, Segments(pattern), max_body_bytes, std::move(open)});
}

Result<int> HttpServer::Start() {
  EnableThreads();
  if (!opts_.tls_cert.empty() || !opts_.tls_key.empty()) {
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
  }
  base_ = event_base_new();
  if (!base_) return Internal("cannot create the event loop");
  http_ = evhttp_new(base_);
  wake_ = event_new(base_, -1, 0, &HttpServer::OnWake, this);

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
  if (!evhttp_accept_socket_with_handle(http_, fd)) {
    ::close(fd);
    return Internal("evhttp cannot accept on the listening socket");
  }

  // Bodies above our limit still arrive (up to 4x) so the answer is our JSON 413, not
  // libevent's HTML one; beyond that the connection is refused outright.
  evhttp_set_max_body_size(http_, static_cast<ev_ssize_t>(opts_.max_body_bytes * 4));
  evhttp_set_max_headers_size(http_, 64 << 10);
  evhttp_set_timeout(http_, static_cast<int>(opts_.idle_timeout.count()));
  evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                        EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                        EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
  evhttp_set_gencb(http_, &HttpServer::OnRequest, this);
  if (tls_ || !streamed_.empty()) evhttp_set_bevcb(http_, &HttpServer::NewConnection, this);

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
    for (auto& s : open) s->End();
  });
  {
    std::lock_guard<std::mutex> lock(jobs_mu_);
    stopping_workers_ = true;
  }
  jobs_cv_.notify_all();
  for (auto& w : workers_) w.join();
  workers_.clear();
  Post([this] {
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
  if (http_) evhttp_free(http_);
  http_ = nullptr;
  streams_.clear();
  input_gates_.clear();
  input_gate_count_ = 0;
  if (wake_) event_free(wake_);
  wake_ = nullptr;
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
      HttpResponse bad;
      bad.status = 400;
      bad.body = self->error_body_(400, "malformed query string: every parameter needs name=value");
      self->Reply(req, std::move(bad));
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
  if (!self->input_gates_.empty()) {
    evhttp_connection* evcon = evhttp_request_get_connection(req);
    auto gate = evcon ? self->input_gates_.find(evhttp_connection_get_bufferevent(evcon))
                      : self->input_gates_.end();
    if (gate != self->input_gates_.end()) {
      evhttp_request_set_on_complete_cb(req, &HttpServer::OnRequestComplete, self);
      auto& ready = gate->second->ready;
      if (ready && ready->method == r.method && ready->path == r.path) {
        r.sink = std::move(ready->sink);
        r.body_bytes = ready->bytes;
        r.body_error = std::move(ready->error);
        if (ready->close) {
          evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        }
      }
      ready.reset();
    }
  }
  evbuffer* body = evhttp_request_get_input_buffer(req);
  size_t len = evbuffer_get_length(body);
  if (len > self->opts_.max_body_bytes) {
    HttpResponse big;
    big.status = 413;
    big.body = self->error_body_(413, "request body of " + std::to_string(len) +
                                          " bytes is over the limit of " +
                                          std::to_string(self->opts_.max_body_bytes) + " bytes");
    self->Reply(req, std::move(big));
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

void HttpServer::Observe(const std::string& route, const std::string& method, int status,
                         std::chrono::steady_clock::time_point arrived) {
  if (!opts_.observe) return;
  opts_.observe(route, method, status,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - arrived).count());
}

void HttpServer::Dispatch(HttpRequest& request, HttpResponse& response, std::string* route_out) {
  auto segments = Segments(request.path);
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
    evhttp_send_reply(req, response.status, Reason(response.status), buf);
    evbuffer_free(buf);
    return;
  }
  evhttp_send_reply_start(req, response.status, Reason(response.status));
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
