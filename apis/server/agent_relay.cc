#include "apis/server/agent_relay.h"

#include <httplib.h>

#include <thread>
#include <utility>

#include "apis/agent_key.h"

namespace mentat {
namespace {

constexpr size_t kMaxErrorBody = 64 << 10;  // an agent's error answer kept to pass on

std::string Bracketed(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

std::unique_ptr<httplib::Client> NewClient(const AgentEndpoint& to, const AgentRelayOptions& o) {
  // http: straight to the observed address. https: to the observed address as well, with the
  // certificate checked against the name the agent advertises.
  const std::string& host = to.https ? to.host : to.ip;
  auto cli = std::make_unique<httplib::Client>(std::string(to.https ? "https" : "http") + "://" +
                                               Bracketed(host) + ":" + std::to_string(to.port));
  if (to.https) {
    if (to.host != to.ip) cli->set_hostname_addr_map({{to.host, to.ip}});
    if (!o.ca_file.empty()) cli->set_ca_cert_path(o.ca_file.c_str());
    cli->enable_server_certificate_verification(true);
  }
  cli->set_connection_timeout(static_cast<time_t>(o.connect_timeout.count()), 0);
  cli->set_read_timeout(static_cast<time_t>(o.read_timeout.count()), 0);
  cli->set_write_timeout(static_cast<time_t>(o.read_timeout.count()), 0);
  return cli;
}

Error Unreachable(const AgentEndpoint& to, httplib::Error err) {
  if (err == httplib::Error::SSLServerVerification || err == httplib::Error::SSLLoadingCerts) {
    return Error(
        Code::kFailedPrecondition,
        "cannot verify the TLS certificate of " + to.Describe() +
            " (mentat-server --agent-ca-file names the CA that signs agents' certificates)");
  }
  return Error(Code::kUnavailable,
               "cannot reach " + to.Describe() + ": " + httplib::to_string(err));
}

// The agent answered without proving it holds the node's key: whatever listens there is not
// that node's agent (or not yet: an agent that has not fetched its key). Nothing it sent is
// passed on, not even as a message.
Error Unproven(const AgentEndpoint& to, int status) {
  return Error(Code::kUnavailable, to.Describe() + " did not prove it is node " + to.node +
                                       "'s agent (it answered HTTP " + std::to_string(status) +
                                       " without the proof of the node's agent key)");
}

HttpResponse ErrorResponse(const Error& e) {
  HttpResponse out;
  out.status = e.HttpStatus();
  out.body = e.ToJson().dump() + "\n";
  return out;
}

// A proven agent's error answer, passed on as it is, except that a refusal of the server's own
// key is not the user's authentication problem.
HttpResponse AgentError(const AgentEndpoint& to, int status, const std::string& body) {
  if (status == 401 || status == 403) {
    Error said = Error::FromJson(status, body);
    return ErrorResponse(
        Error(Code::kUnavailable, to.Describe() + " refused the server's key: " + said.message()));
  }
  HttpResponse out;
  out.status = status;
  out.body = body;
  return out;
}

}  // namespace

std::string AgentEndpoint::Describe() const {
  std::string at = Bracketed(ip) + ":" + std::to_string(port);
  if (https && host != ip) at = host + " (" + at + ")";
  return "node " + node + "'s agent at " + at;
}

struct AgentRelay::Call : std::enable_shared_from_this<Call> {
  AgentEndpoint to;
  std::string path, body, content_type;
  RelayHooks hooks;
  Rewrite rewrite;
  HttpResponder respond;  // called once, when the answer (or a stream's head) is known
  std::string challenge = RandomHex(16);
  size_t max_ahead = 0;

  std::mutex mu;
  std::condition_variable cv;
  httplib::Client* client = nullptr;  // while the request is in progress
  bool cancelled = false;             // the client left, or the server stops
  std::weak_ptr<HttpStream> stream;   // once the head went out
  std::string queued;                 // agent bytes not yet handed to the stream
  bool flush_posted = false;
  bool blocked = false;   // the client's buffer is full: nothing is written until it drains
  bool finished = false;  // the agent's body is over; `last` goes after the queue
  std::string last;

  httplib::Headers Headers() const {
    return {{"Authorization", "Bearer " + to.key}, {kAgentChallengeHeader, challenge}};
  }
  bool Proven(const httplib::Response& r) const {
    return ConstantTimeEquals(r.get_header_value(kAgentProofHeader), AgentProof(to.key, challenge));
  }
  void Answer(HttpResponse out) {
    if (auto r = std::exchange(respond, nullptr)) r(std::move(out));
  }

  void Cancel() {
    std::lock_guard<std::mutex> lock(mu);
    cancelled = true;
    if (client) client->stop();
    cv.notify_all();
  }

  // Relay thread: queues a piece of the agent's body, first waiting while the client is
  // `max_ahead` behind. False once the call is cancelled.
  bool Push(const char* d, size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return cancelled || queued.size() < max_ahead; });
    if (cancelled) return false;
    queued.append(d, n);
    PostFlushLocked();
    return true;
  }

  void Finish(std::string last_words) {
    std::lock_guard<std::mutex> lock(mu);
    finished = true;
    last = std::move(last_words);
    PostFlushLocked();
  }

  void PostFlushLocked() {
    auto s = stream.lock();
    if (flush_posted || !s) return;  // not attached yet: Attach flushes
    flush_posted = true;
    s->Post([self = shared_from_this()] { Flush(self); });
  }

  // Loop thread: hands what is queued to the stream, unless the client's buffer is full; then
  // again when it has drained.
  static void Flush(const std::shared_ptr<Call>& c) {
    auto s = c->stream.lock();
    if (!s || !s->open()) return;
    std::string data;
    bool end = false;
    {
      std::lock_guard<std::mutex> lock(c->mu);
      c->flush_posted = false;
      if (c->blocked) return;
      data.swap(c->queued);
      end = c->finished;
      if (end) data += std::exchange(c->last, "");
    }
    c->cv.notify_all();
    if (!data.empty()) s->Write(data);
    if (end) return s->End();
    if (s->Pending() <= c->max_ahead) return;
    {
      std::lock_guard<std::mutex> lock(c->mu);
      c->blocked = true;
    }
    s->WhenDrained([weak = std::weak_ptr<Call>(c)] {
      auto c = weak.lock();
      if (!c) return;
      {
        std::lock_guard<std::mutex> lock(c->mu);
        c->blocked = false;
      }
      Flush(c);
    });
  }

  // Loop thread: the stream has started.
  static void Attach(const std::shared_ptr<Call>& c, const std::shared_ptr<HttpStream>& s) {
    {
      std::lock_guard<std::mutex> lock(c->mu);
      c->stream = s;
    }
    // The stream owns the call while it is open: once the agent's body is over, its last bytes
    // (and the body's end) may still wait in `queued` for a slow client to drain, after the
    // relay thread that held the call has gone. Held weakly, the call went with that thread and
    // the drain found nothing to finish: the client waited for the end until its own timeout.
    s->OnClose([c] { c->Cancel(); });
    s->Every(std::chrono::seconds(1), [] {});  // notices a client that left a quiet stream
    Flush(c);
  }

  // Answers with the agent's 200 head; its body follows through Push.
  void StartStream(const httplib::Response& r) {
    HttpResponse out;
    out.content_type = r.has_header("Content-Type") ? r.get_header_value("Content-Type")
                                                    : "application/octet-stream";
    if (r.has_header("X-Log-Start")) {
      out.headers.emplace_back("X-Log-Start", r.get_header_value("X-Log-Start"));
    }
    // A client that left before the stream started gets no stream: the guard then cancels.
    struct Guard {
      explicit Guard(std::shared_ptr<Call> c) : call(std::move(c)) {}
      Guard(const Guard&) = delete;  // a copy's destructor would cancel the call
      ~Guard() {
        if (!attached) call->Cancel();
      }
      std::shared_ptr<Call> call;
      bool attached = false;
    };
    auto guard = std::make_shared<Guard>(shared_from_this());
    out.stream = [guard](const std::shared_ptr<HttpStream>& s) {
      guard->attached = true;
      Attach(guard->call, s);
    };
    Answer(std::move(out));
  }
};

void AgentRelay::Relay(const AgentEndpoint& to, const std::string& path, RelayHooks hooks,
                       HttpResponder respond) {
  auto c = std::make_shared<Call>();
  c->to = to;
  c->path = path;
  c->hooks = std::move(hooks);
  c->respond = std::move(respond);
  c->max_ahead = opts_.max_ahead;
  Launch(std::move(c), [this](Call& c) { RunGet(c); });
}

void AgentRelay::Forward(const AgentEndpoint& to, const std::string& path, std::string body,
                         std::string content_type, Rewrite rewrite, HttpResponder respond) {
  auto c = std::make_shared<Call>();
  c->to = to;
  c->path = path;
  c->body = std::move(body);
  c->content_type = content_type.empty() ? "application/json" : std::move(content_type);
  c->rewrite = std::move(rewrite);
  c->respond = std::move(respond);
  Launch(std::move(c), [this](Call& c) { RunPost(c); });
}

void AgentRelay::Launch(std::shared_ptr<Call> c, std::function<void(Call&)> body) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || calls_.size() >= opts_.max_calls) {
      if (c->hooks.on_end) c->hooks.on_end(false);
      c->Answer(ErrorResponse(Error(
          Code::kUnavailable, stopping_
                                  ? "the server is stopping"
                                  : "the server relays " + std::to_string(calls_.size()) +
                                        " calls to agents already, its most; try again shortly")));
      return;
    }
    calls_.insert(c);
  }
  std::thread([this, c, body = std::move(body)] {
    body(*c);
    std::lock_guard<std::mutex> lock(mu_);
    calls_.erase(c);
    idle_.notify_all();
  }).detach();
}

void AgentRelay::RunGet(Call& c) {
  auto cli = NewClient(c.to, opts_);
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.cancelled) {
      if (c.hooks.on_end) c.hooks.on_end(false);
      c.Answer(ErrorResponse(Error(Code::kUnavailable, "the server is stopping")));
      return;
    }
    c.client = cli.get();
  }
  int status = 0;
  bool proven = false, streaming = false;
  std::string error_body;
  auto on_head = [&](const httplib::Response& r) {
    status = r.status;
    proven = c.Proven(r);
    if (!proven) return false;
    if (status == 200) {
      streaming = true;
      c.StartStream(r);
    }
    return true;
  };
  auto on_body = [&](const char* d, size_t n) {
    if (streaming) {
      if (!c.Push(d, n)) return false;
      bytes_relayed_ += n;
      return true;
    }
    error_body.append(d, std::min(n, kMaxErrorBody - error_body.size()));
    return error_body.size() < kMaxErrorBody;
  };
  auto res = cli->Get(c.path, c.Headers(), on_head, on_body);
  bool cancelled;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    c.client = nullptr;
    cancelled = c.cancelled;
  }
  // The hook runs before the client can see the answer's end: a client that read an exec
  // session's output to its end and writes again finds the session gone, not half there.
  if (c.hooks.on_end) c.hooks.on_end(streaming);
  if (streaming) {
    std::string last;
    if (!res && !cancelled && c.hooks.last_words)
      last = c.hooks.last_words(Unreachable(c.to, res.error()));
    c.Finish(std::move(last));
  } else if (status != 0 && !proven) {
    c.Answer(ErrorResponse(Unproven(c.to, status)));
  } else if (status != 0) {
    c.Answer(AgentError(c.to, status, error_body));
  } else {
    c.Answer(ErrorResponse(
        cancelled ? Error(Code::kUnavailable, "the call to " + c.to.Describe() + " was cancelled")
                  : Unreachable(c.to, res.error())));
  }
}

void AgentRelay::RunPost(Call& c) {
  auto cli = NewClient(c.to, opts_);
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.cancelled)
      return c.Answer(ErrorResponse(Error(Code::kUnavailable, "the server is stopping")));
    c.client = cli.get();
  }
  auto res = cli->Post(c.path, c.Headers(), c.body, c.content_type.c_str());
  {
    std::lock_guard<std::mutex> lock(c.mu);
    c.client = nullptr;
  }
  if (!res) return c.Answer(ErrorResponse(Unreachable(c.to, res.error())));
  if (!c.Proven(*res)) return c.Answer(ErrorResponse(Unproven(c.to, res->status)));
  if (res->status < 200 || res->status > 299)
    return c.Answer(AgentError(c.to, res->status, res->body));
  HttpResponse out;
  out.status = res->status;
  out.body = res->body;
  if (c.rewrite) {
    auto rewritten = c.rewrite(res->body);
    if (!rewritten) return c.Answer(ErrorResponse(rewritten.error()));
    out.body = std::move(*rewritten);
  }
  c.Answer(std::move(out));
}

void AgentRelay::Stop() {
  std::unique_lock<std::mutex> lock(mu_);
  stopping_ = true;
  for (const auto& c : calls_) c->Cancel();
  idle_.wait(lock, [&] { return calls_.empty(); });
}

size_t AgentRelay::InProgress() {
  std::lock_guard<std::mutex> lock(mu_);
  return calls_.size();
}

}  // namespace mentat
