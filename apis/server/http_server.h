// An event-driven HTTP/1.1 server on libevent's evhttp: one loop thread owns every socket,
// and handlers run on a pool of workers. Long-lived responses (watch streams) hold no thread:
// they are HttpStreams, written from the loop thread when there is something to send.
//
// Threading rules:
//   - Handlers run on worker threads. They may block, but one that waits on something slow (a
//     write's fsync) should defer its response instead (HttpResponse::Defer) and let its worker
//     go.
//   - An HttpStream is used on the loop thread only. Other threads reach it through
//     HttpStream::Post, which runs a function on the loop thread while the stream is open.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "apis/error.h"
#include "apis/server/connection_limits.h"
#include "apis/server/rate_limited_log.h"

struct event;
struct event_base;
struct bufferevent;
struct ssl_ctx_st;
struct evhttp;
struct evhttp_request;
struct evhttp_connection;
struct evbuffer;
struct evbuffer_cb_entry;
struct evbuffer_cb_info;

namespace mentat {

class AcceptBackoff;
struct RequestHead;

// Where a streamed route's request body goes as it arrives (HttpServer::StreamBody) instead of
// into HttpRequest::body: the API server writes artifacts of hundreds of MB straight to disk.
class BodySink {
 public:
  virtual ~BodySink() = default;
  // The next bytes of the body, in order. Runs on the loop thread, so it must not block for
  // long (writing to a file is fine). An error stops the writes: the rest of the body is read
  // and dropped, and the handler finds the error in HttpRequest::body_error.
  virtual Status Write(const char* data, size_t n) = 0;
};
using BodySinkPtr = std::shared_ptr<BodySink>;

struct HttpRequest {
  std::string method;  // GET, PUT, POST, DELETE, HEAD, PATCH, OPTIONS
  std::string path;    // percent-decoded, without the query
  std::vector<std::string> matches;  // the route's ":name" segments, in order
  std::multimap<std::string, std::string> params;  // the decoded query
  std::map<std::string, std::string> headers;      // names lower-cased
  std::string body;
  // The client's IP address as its TCP connection shows it ("127.0.0.1", "::1"): not what the
  // client says of itself, so the server can trust it where it trusts the network path.
  std::string peer_address;
  // Routes registered with StreamBody. The body went to `sink`, all `body_bytes` of it, and
  // `body` is empty. Or it was refused, and `body_error` says why: a 413 over the route's limit,
  // a 400 without a Content-Length (both unread, and the connection closes after the answer),
  // or the sink's own error (read and dropped). A request that reached the route without the
  // gate seeing its head (pipelined behind another) has neither: its body is in `body`, under
  // the server's ordinary limit.
  BodySinkPtr sink;
  uint64_t body_bytes = 0;
  std::optional<Error> body_error;

  bool HasParam(const std::string& name) const { return params.count(name) > 0; }
  std::string Param(const std::string& name) const;
  std::string Header(const std::string& lower_name) const;
};

class HttpStream;
struct HttpResponse;

// Sends a deferred response (HttpResponse::Defer). Any thread; call it exactly once.
using HttpResponder = std::function<void(HttpResponse)>;

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // Set to answer with a stream instead of a body: the status and headers go out, then this
  // runs on the loop thread with the open stream (chunked transfer encoding).
  std::function<void(const std::shared_ptr<HttpStream>&)> stream;

  // For a handler that answers later without holding its worker thread (until a write is
  // durable, say): it calls Defer(), returns, and later sends the response through the
  // responder. Nothing set on this object is sent then. The handler must not throw after Defer.
  HttpResponder Defer() { return defer_(); }

 private:
  friend class HttpServer;
  std::function<HttpResponder()> defer_;  // set by the server while the handler runs
};

// A chunked response in progress. Loop thread only, except Post.
class HttpStream : public std::enable_shared_from_this<HttpStream> {
 public:
  ~HttpStream();

  // False once the client has gone or the stream has ended.
  bool open() const { return req_ != nullptr && !ending_; }
  // Sends one chunk. False if the stream is no longer open.
  bool Write(const std::string& data);
  // Sends `length` bytes of the open file `fd` from `offset`, then ends the stream. It takes
  // ownership of fd. A piece of at most 1 MiB is read when the client has taken the one
  // before, so a large file never sits in memory (or in a mapping).
  void SendFile(int fd, uint64_t offset, uint64_t length);
  // Bytes written but not yet taken by the kernel: how far the client lags.
  size_t Pending() const;
  // Ends the response (the terminating chunk) and closes the stream: open() is false and the
  // close hooks have run when it returns. The end goes out once the client has taken the rest.
  void End();

  // Runs fn on the loop thread, if the stream is still open then. Any thread.
  void Post(std::function<void()> fn);
  // Runs fn every `interval` on the loop thread while the stream is open.
  void Every(std::chrono::milliseconds interval, std::function<void()> fn);
  // Runs fn once, when the client's buffer next drains after a Write.
  void WhenDrained(std::function<void()> fn);
  // Runs once the stream closes for any reason (ended, client gone, server stopping).
  void OnClose(std::function<void()> fn);

 private:
  friend class HttpServer;
  HttpStream(class HttpServer* server, evhttp_request* req) : server_(server), req_(req) {}
  struct FileToSend;
  void SendPiece(const std::shared_ptr<FileToSend>& file);
  // The client's buffer drained: libevent says so after each Write.
  void OnDrained();
  // Stops the stream for its user: no more ticks or drain callbacks; the close hooks run.
  void CloseForUser();
  // Sends the terminating chunk if the client is still there, frees the request and lets the
  // server drop the stream. Only where no late drain report can follow (see End).
  void Finish();
  // Runs on the loop turn after End, and again until Finish is safe.
  void CheckEnd();
  void ArmEndCheck(std::chrono::milliseconds delay);
  bool ClientGone() const;

  HttpServer* server_;
  evhttp_request* req_;  // until Finish
  event* timer_ = nullptr;
  event* end_timer_ = nullptr;
  std::function<void()> tick_;
  std::function<void()> drained_;
  std::vector<std::function<void()>> on_close_;
  bool wrote_ = false;   // a Write set our drain callback on the connection
  bool ending_ = false;  // End was called; Finish has yet to run
  bool quiet_ = false;   // nothing to write was seen after End: no drain can follow
};

using HttpHandler = std::function<void(const HttpRequest&, HttpResponse&)>;

// Judges a request from its head alone (method, path, params and headers; no matches, no
// body), before any of its body is read: nullopt lets it on, a response refuses it. The refusal
// is sent at once, without running a handler; a body of up to 4x the server's ordinary limit
// is then read and dropped (never held), a longer one closes the connection. Runs on the loop
// thread for every request, so it must be quick. `peer` is the client's IP address.
using HeadCheck =
    std::function<std::optional<HttpResponse>(const HttpRequest& head, const std::string& peer)>;

// Opens the sink for one streamed request, given its head (method, path, matches, params and
// headers; no body). Runs on the loop thread. An error (auth, say) is answered by the handler
// after the body has been read and dropped; nullptr drops the body without an error.
using BodySinkFactory = std::function<Result<BodySinkPtr>(const HttpRequest& head)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0 picks a free port
  // Handler threads. Handlers that wait for a write's fsync defer their response and do not
  // hold one, so the pool is sized for CPU work plus the handlers that still block: more
  // runnable threads than cores only adds hand-offs.
  int workers = 8;
  size_t max_body_bytes = 8 << 20;
  std::chrono::seconds idle_timeout{120};
  // HTTPS when both are set: a PEM certificate chain and its private key.
  std::string tls_cert;
  std::string tls_key;
  // The largest request head: a longer one is answered 431 and its connection closed.
  size_t max_header_bytes = 64 << 10;
  // Caps on connections, and the deadlines of slow heads and bodies.
  HttpLimits limits;
  // Called on the loop thread once a response (or a stream) has started: the route pattern
  // that matched ("" when none did), the method, the status, and the time since arrival.
  std::function<void(const std::string& route, const std::string& method, int status,
                     double seconds)>
      observe;
};

class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions opts);
  ~HttpServer();

  // Routes are matched by segments: "/v1/:kind/:name" matches "/v1/services/web" with
  // matches {"services", "web"}. HEAD is served by the GET route.
  void Route(const std::string& method, const std::string& pattern, HttpHandler handler);
  // Answers requests no route matched, and turns handler exceptions into a response.
  void SetErrorBody(std::function<std::string(int status, const std::string& message)> body);
  // Every request's head passes `check` before its body is read (HeadCheck). Call before Start.
  void CheckHeads(HeadCheck check) { head_check_ = std::move(check); }
  // Bodies of requests matching (method, pattern) are streamed to a sink from `open` as they
  // arrive, never held in memory, and the route's handler (Route) runs once all of the body is
  // in the sink. Such a body needs a Content-Length: one declaring more than max_body_bytes,
  // or none, is refused unread (HttpRequest::body_error), and the connection closes after the
  // answer. Call before Start.
  //
  // How, on libevent 2.1's evhttp (which has no hook between a request's head and its body):
  // every connection's input passes a gate (an evbuffer callback, ahead of evhttp, http_gate.h)
  // that reads each request's head first; for a streamed route it sends the body to the sink
  // itself and hands evhttp the head alone, with "Content-Length: 0". Every other request
  // passes as sent, under max_body_bytes of HttpServerOptions.
  void StreamBody(const std::string& method, const std::string& pattern, uint64_t max_body_bytes,
                  BodySinkFactory open);

  // Binds, listens, and starts the loop and the workers. Returns the bound port.
  Result<int> Start();
  // Ends every open stream, closes every connection, and joins all threads.
  void Stop();

  // Runs fn on the loop thread. Any thread. False once the server is stopping.
  bool Post(std::function<void()> fn);
  // Open streams, for metrics.
  size_t StreamCount() const { return stream_count_.load(); }
  // Connections the input gate tracks, for tests: it drops each when its connection closes.
  size_t InputGateCount() const { return input_gate_count_.load(); }
  // For metrics: connections open and counted in the caps; those refused over a cap; those
  // closed for a head or body too slow; accept() failures (out of descriptors, say).
  size_t ConnectionCount() const { return open_connections_.load(); }
  uint64_t RefusedConnections() const { return refused_connections_.load(); }
  uint64_t TimedOutConnections() const { return timed_out_connections_.load(); }
  uint64_t AcceptFailures() const;

  struct InputGate;  // one per connection, in http_gate.h

 private:
  friend class HttpStream;
  struct RouteEntry {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;
    HttpHandler handler;
  };
  struct Job {
    evhttp_request* req;
    HttpRequest request;
    std::chrono::steady_clock::time_point arrived;
  };
  struct StreamedRoute {
    std::string method;
    std::vector<std::string> segments;
    uint64_t max_body_bytes;
    BodySinkFactory open;
  };

  // Connections (http_connections.cc): admission under the caps, and deadlines. Loop thread.
  static bufferevent* NewConnection(event_base* base, void* self);
  static void OnAdmit(int, short, void* self);
  void Admit(InputGate& g);
  void RefuseConnection(InputGate& g, int status, const std::string& why);
  static void OnConnectionClose(evhttp_connection* evcon, void* gate);
  InputGate* GateOf(evhttp_request* req);
  void SetHeadDeadline(InputGate& g);
  void SetBodyDeadline(InputGate& g, uint64_t bytes);
  void SetLingerDeadline(InputGate& g);
  void ClearDeadline(InputGate& g);
  static void OnDeadline(int, short, void* gate);

  // The input gate (http_gate.cc): each request's head is judged before evhttp sees it.
  static void OnInput(evbuffer* buf, const evbuffer_cb_info* info, void* gate);
  static void OnRequestComplete(evhttp_request* req, void* self);
  // Hands on what the gate holds, as far as the connection's state lets it: what evhttp is to
  // read goes to `to_evhttp`, and the functions below write there too.
  void Pump(InputGate& g, evbuffer* to_evhttp);
  void HoldWhileAnswering(InputGate& g);
  // False while the head is not all in yet.
  bool TakeHead(InputGate& g, evbuffer* to_evhttp);
  void PassRequest(InputGate& g, evbuffer* to_evhttp, const RequestHead& head, const std::string& text);
  // `head` is null when it could not be parsed.
  void RefuseHead(InputGate& g, evbuffer* to_evhttp, const RequestHead* head, HttpResponse refusal);
  const StreamedRoute* MatchStreamed(HttpRequest& r) const;
  void StartUpload(InputGate& g, evbuffer* to_evhttp, const RequestHead& head, HttpRequest request,
                   const StreamedRoute& route);
  static std::optional<Error> UploadRefusal(const RequestHead& head, const StreamedRoute& route);
  void Spool(InputGate& g, evbuffer* to_evhttp);
  void EndBody(InputGate& g);

  HttpResponse ErrorResponse(int status, const std::string& message) const;
  static std::string BodyTooLarge(uint64_t bytes, uint64_t max);
  // Gives the memory of large bodies back to the system, a second after the last one.
  void ReleaseMemorySoon();
  Status LoadTls();
  std::unique_ptr<ConnectionLimits> MakeLimits() const;
  Result<int> Listen();

  static void OnRequest(evhttp_request* req, void* self);
  static void OnWake(int, short, void* self);
  // Runs the matching route's handler. Sets *route to its pattern ("" when none matched)
  // before the handler runs.
  void Dispatch(HttpRequest& request, HttpResponse& response, std::string* route);
  // Sends a handler's response to `req` from any thread, through the loop thread.
  HttpResponder Responder(evhttp_request* req, std::string route, std::string method,
                          std::chrono::steady_clock::time_point arrived);
  void Observe(const std::string& route, const std::string& method, int status,
               std::chrono::steady_clock::time_point arrived);
  void Reply(evhttp_request* req, HttpResponse response);
  void WorkerLoop();

  HttpServerOptions opts_;
  std::vector<RouteEntry> routes_;
  std::function<std::string(int, const std::string&)> error_body_;


  event_base* base_ = nullptr;
  evhttp* http_ = nullptr;
  ssl_ctx_st* tls_ = nullptr;
  event* wake_ = nullptr;
  std::thread loop_;
  std::atomic<bool> running_{false};

  std::mutex post_mu_;
  std::deque<std::function<void()>> posted_;
  bool accepting_posts_ = false;  // while the loop runs

  // How deferred responders reach the server: they may outlive it (a write completing during
  // shutdown), so they hold this, and Stop clears `server` under `mu`.
  struct ResponderGate {
    std::mutex mu;
    HttpServer* server;
  };
  std::shared_ptr<ResponderGate> gate_;

  std::mutex jobs_mu_;
  std::condition_variable jobs_cv_;
  std::deque<Job> jobs_;
  bool stopping_workers_ = false;
  std::vector<std::thread> workers_;

  // Loop thread only.
  std::map<HttpStream*, std::shared_ptr<HttpStream>> streams_;
  std::atomic<size_t> stream_count_{0};
  std::vector<StreamedRoute> streamed_;  // set before Start
  std::map<bufferevent*, std::unique_ptr<InputGate>> input_gates_;
  std::atomic<size_t> input_gate_count_{0};
  HeadCheck head_check_;  // set before Start
  std::unique_ptr<ConnectionLimits> limits_;
  std::unique_ptr<AcceptBackoff> backoff_;
  event* admit_ = nullptr;
  std::vector<bufferevent*> fresh_;  // accepted, to be admitted
  event* release_ = nullptr;
  bool release_pending_ = false;
  RateLimitedLog refused_log_;
  RateLimitedLog timeout_log_;
  std::atomic<size_t> open_connections_{0};
  std::atomic<uint64_t> refused_connections_{0};
  std::atomic<uint64_t> timed_out_connections_{0};
};

}  // namespace mentat
