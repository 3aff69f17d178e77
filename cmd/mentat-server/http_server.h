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
#include <string>
#include <thread>
#include <vector>

#include "apis/error.h"

struct event;
struct event_base;
struct bufferevent;
struct ssl_ctx_st;
struct evhttp;
struct evhttp_request;

namespace mentat {

struct HttpRequest {
  std::string method;  // GET, PUT, POST, DELETE, HEAD, PATCH, OPTIONS
  std::string path;    // percent-decoded, without the query
  std::vector<std::string> matches;  // the route's ":name" segments, in order
  std::multimap<std::string, std::string> params;  // the decoded query
  std::map<std::string, std::string> headers;      // names lower-cased
  std::string body;

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
  bool open() const { return req_ != nullptr; }
  // Sends one chunk. False if the stream is no longer open.
  bool Write(const std::string& data);
  // Bytes written but not yet taken by the kernel: how far the client lags.
  size_t Pending() const;
  // Ends the response (the terminating chunk) and closes the stream.
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
  // The client is gone or the server stops: free the request, run the close hooks.
  void Close(bool send_end);
  bool ClientGone() const;

  HttpServer* server_;
  evhttp_request* req_;
  event* timer_ = nullptr;
  std::function<void()> tick_;
  std::function<void()> drained_;
  std::vector<std::function<void()>> on_close_;
};

using HttpHandler = std::function<void(const HttpRequest&, HttpResponse&)>;

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

  // Binds, listens, and starts the loop and the workers. Returns the bound port.
  Result<int> Start();
  // Ends every open stream, closes every connection, and joins all threads.
  void Stop();

  // Runs fn on the loop thread. Any thread. False once the server is stopping.
  bool Post(std::function<void()> fn);
  // Open streams, for metrics.
  size_t StreamCount() const { return stream_count_.load(); }

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

  static bufferevent* NewTlsConnection(event_base* base, void* self);

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
};

}  // namespace mentat
