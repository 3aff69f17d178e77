#include "runtimes/docker/engine_client.h"

#include <curl/curl.h>
#include <httplib.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>

namespace mentat::docker {

namespace {

std::once_flag curl_init_once;

void InitCurl() { std::call_once(curl_init_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); }); }

// A query value or path segment for the Engine API. cpp-httplib's encoder (as apis/client's):
// it leaves ! ' ( ) * as they are, which the Engine's Go URL parser reads as themselves.
std::string Escape(const std::string& s) { return httplib::detail::encode_query_param(s); }

struct Transfer {
  std::string body;
  const std::function<bool(std::string_view)>* stream = nullptr;
  const std::atomic<bool>* cancel = nullptr;
  long status = 0;
  CURL* curl = nullptr;
  bool aborted = false;
};

size_t OnData(char* data, size_t size, size_t n, void* p) {
  auto* t = static_cast<Transfer*>(p);
  size_t len = size * n;
  if (t->status == 0) curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &t->status);
  // Only a successful answer streams; an error's body is Docker's message, read whole.
  if (t->stream && t->status >= 200 && t->status < 300) {
    if (!(*t->stream)(std::string_view(data, len))) {
      t->aborted = true;
      return 0;
    }
    return len;
  }
  t->body.append(data, len);
  return len;
}

int OnProgress(void* p, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(p);
  if (t->cancel && t->cancel->load()) {
    t->aborted = true;
    return 1;
  }
  return 0;
}

int CompareVersions(const std::string& a, const std::string& b) {
  int a1 = 0, a2 = 0, b1 = 0, b2 = 0;
  std::sscanf(a.c_str(), "%d.%d", &a1, &a2);
  std::sscanf(b.c_str(), "%d.%d", &b1, &b2);
  if (a1 != b1) return a1 < b1 ? -1 : 1;
  if (a2 != b2) return a2 < b2 ? -1 : 1;
  return 0;
}

}  // namespace

void StreamDemuxer::Feed(std::string_view data) {
  while (!data.empty()) {
    if (remaining_ == 0) {
      size_t need = 8 - header_.size();
      size_t take = std::min(need, data.size());
      header_.append(data.substr(0, take));
      data.remove_prefix(take);
      if (header_.size() < 8) return;
      stream_ = static_cast<unsigned char>(header_[0]);
      remaining_ = (size_t{static_cast<unsigned char>(header_[4])} << 24) |
                   (size_t{static_cast<unsigned char>(header_[5])} << 16) |
                   (size_t{static_cast<unsigned char>(header_[6])} << 8) |
                   size_t{static_cast<unsigned char>(header_[7])};
      header_.clear();
      if (remaining_ == 0 && frame_end_) frame_end_(stream_);
      continue;
    }
    size_t take = std::min(remaining_, data.size());
    if (out_) out_(stream_, data.substr(0, take));
    remaining_ -= take;
    data.remove_prefix(take);
    if (remaining_ == 0 && frame_end_) frame_end_(stream_);
  }
}

Error EngineError(long status, const std::string& body, const std::string& what) {
  Json j = Json::parse(body, nullptr, false);
  std::string msg = j.is_object() && j.contains("message") && j["message"].is_string()
                        ? j["message"].get<std::string>()
                        : body;
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  Code code = status == 400   ? Code::kInvalidArgument
              : status == 404 ? Code::kNotFound
              : status == 409 ? Code::kAlreadyExists
              : status == 503 ? Code::kUnavailable
                              : Code::kInternal;
  return Error(code, what + ": " + msg);
}

Result<EngineResponse> EngineClient::Perform(const std::string& method, const std::string& path,
                                             const std::string& body, long timeout_ms,
                                             const std::function<bool(std::string_view)>* stream,
                                             const std::atomic<bool>* cancel) {
  InitCurl();
  CURL* curl = curl_easy_init();
  if (!curl) return Internal("curl_easy_init failed");
  Transfer t;
  t.stream = stream;
  t.cancel = cancel;
  t.curl = curl;
  std::string url = "http://docker" + path;
  curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, socket_.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
  if (timeout_ms > 0) curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  struct curl_slist* headers = nullptr;
  if (method == "POST" || method == "PUT") {
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnData);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  if (cancel) {
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, OnProgress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
  }
  CURLcode rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &t.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (t.aborted) return EngineResponse{t.status, std::move(t.body)};
  if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_GOT_NOTHING ||
      rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR || rc == CURLE_PARTIAL_FILE) {
    // The next call negotiates again: a restarted dockerd may be another version.
    if (rc == CURLE_COULDNT_CONNECT) {
      std::lock_guard<std::mutex> lock(mu_);
      api_.clear();
    }
    return Unavailable("dockerd is not reachable at " + socket_ + ": " + curl_easy_strerror(rc));
  }
  if (rc != CURLE_OK) return Internal(method + " " + path + ": " + curl_easy_strerror(rc));
  return EngineResponse{t.status, std::move(t.body)};
}

Result<EngineResponse> EngineClient::Call(const std::string& method, const std::string& path,
                                          const std::string& body, long timeout_ms) {
  MT_ASSIGN_OR_RETURN(auto res, Perform(method, path, body, timeout_ms, nullptr, nullptr));
  if (res.status == 304 || (res.status >= 200 && res.status < 300)) return res;
  return std::unexpected(EngineError(res.status, res.body, method + " " + path));
}

Result<Json> EngineClient::Version() {
  MT_ASSIGN_OR_RETURN(auto res, Call("GET", "/version", "", 5000));
  Json v = Json::parse(res.body, nullptr, false);
  if (!v.is_object()) return Internal("GET /version: not JSON: " + res.body.substr(0, 200));
  std::string server = v.value("ApiVersion", "");
  std::string use = server.empty() || CompareVersions(server, kMaxApi) > 0 ? kMaxApi : server;
  std::lock_guard<std::mutex> lock(mu_);
  api_ = use;
  return v;
}

Result<std::string> EngineClient::Api() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!api_.empty()) return api_;
  }
  MT_RETURN_IF_ERROR(Version());
  std::lock_guard<std::mutex> lock(mu_);
  return api_;
}

Result<std::string> EngineClient::Path(const std::string& path) {
  MT_ASSIGN_OR_RETURN(std::string api, Api());
  return "/v" + api + path;
}

Result<std::string> EngineClient::CreateContainer(const std::string& name, const Json& config) {
  MT_ASSIGN_OR_RETURN(std::string path, Path("/containers/create?name=" + Escape(name)));
  MT_ASSIGN_OR_RETURN(auto res, Call("POST", path, config.dump()));
  Json j = Json::parse(res.body, nullptr, false);
  if (!j.is_object() || !j.contains("Id")) return Internal("create " + name + ": no Id in " + res.body);
  return j["Id"].get<std::string>();
}

Status EngineClient::StartContainer(const std::string& id) {
  MT_ASSIGN_OR_RETURN(std::string path, Path("/containers/" + id + "/start"));
  MT_RETURN_IF_ERROR(Call("POST", path));
  return {};
}

Status EngineClient::StopContainer(const std::string& id, int timeout_s) {
  MT_ASSIGN_OR_RETURN(std::string path, Path("/containers/" + id + "/stop?t=" + std::to_string(timeout_s)));
  MT_RETURN_IF_ERROR(Call("POST", path, "", (timeout_s + 30) * 1000L));
  return {};
}

Status EngineClient::KillContainer(const std::string& id, int signal) {
  MT_ASSIGN_OR_RETURN(std::string path, Path("/containers/" + id + "/kill?signal=" + std::to_string(signal)));
  MT_RETURN_IF_ERROR(Call("POST", path));
  return {};
}

Status EngineClient::RemoveContainer(const std::string& id, bool force, bool volumes) {
  MT_ASSIGN_OR_RETURN(std::string path, Path("/containers/" + id + "?force=" + (force ? "true" : "false") +
                                             "&v=" + (volumes ? "true" : "false")));
  MT_RETURN_IF_ERROR(Call("DELETE", path));
  return {};
}

namespace {
Result<Json> ParseBody(const EngineResponse& res, const std::string& what) {
  Json j = Json::parse(res.body, nullptr, false);
  if (j.is_discarded()) return Internal(what + ": not JSON: " + res.body.substr(0, 200));
  return j;
}
}  // namespace

Result<Json> EngineClient::InspectContainer(const std::string& id) {
  MT_ASSIGN_OR_RETURN(std::string path, Path("/containers/" + Escape(id) + "/json"));
  MT_ASSIGN_OR_RETURN(auto res, Call("GET", path));
  return ParseBody(res, "inspect " + id);
}

Result<Json> EngineClient::ListContainers(const std::vector<std::string>& labels, bool all) {
  Json filters = {{"label", labels}};
  MT_ASSIGN_OR_RETURN(std::string path, Path(std::string("/containers/json?all=") + (all ? "true" : "false") +
                                             "&filters=" + Escape(filters.dump())));
  MT_ASSIGN_OR_RETURN(auto res, Call("GET", path));
  return ParseBody(res, "list containers");
}

Result<Json> EngineClient::Stats(const std::string& id) {
  MT_ASSIGN_OR_RETURN(std::string path, Path("/containers/" + id + "/stats?stream=false"));
  MT_ASSIGN_OR_RETURN(auto res, Call("GET", path));
  return ParseBody(res, "stats " + id);
}

Result<Json> EngineClient::InspectImage(const std::string& name) {
  MT_ASSIGN_OR_RETURN(std::string path, Path("/images/" + name + "/json"));
  MT_ASSIGN_OR_RETURN(auto res, Call("GET", path));
  return ParseBody(res, "inspect image " + name);
}

Status EngineClient::Logs(const std::string& id, const LogsOptions& options,
                          const std::function<void(int, std::string_view)>& out,
                          const std::atomic<bool>* cancel) {
  MT_ASSIGN_OR_RETURN(Json info, InspectContainer(id));
  bool tty = info.value("Config", Json::object()).value("Tty", false);
  std::string q = std::string("/containers/") + id + "/logs?stdout=true&stderr=true&follow=" +
                  (options.follow ? "true" : "false") + "&timestamps=" + (options.timestamps ? "true" : "false");
  if (!options.since.empty()) q += "&since=" + options.since;
  MT_ASSIGN_OR_RETURN(std::string path, Path(q));
  StreamDemuxer demux(out);
  std::function<bool(std::string_view)> sink = [&](std::string_view d) {
    if (options.raw) out(0, d);
    else if (tty) out(1, d);
    else demux.Feed(d);
    return true;
  };
  MT_ASSIGN_OR_RETURN(auto res, Perform("GET", path, "", 0, &sink, cancel));
  if (res.status >= 300) return std::unexpected(EngineError(res.status, res.body, "logs " + id));
  return {};
}

Result<std::string> EngineClient::ExecCreate(const std::string& container, const Json& config) {
  MT_ASSIGN_OR_RETURN(std::string path, Path("/containers/" + container + "/exec"));
  MT_ASSIGN_OR_RETURN(auto res, Call("POST", path, config.dump()));
  MT_ASSIGN_OR_RETURN(Json j, ParseBody(res, "exec create"));
  return j.value("Id", "");
}

Result<Json> EngineClient::ExecInspect(const std::string& exec_id) {
  MT_ASSIGN_OR_RETURN(std::string path, Path("/exec/" + exec_id + "/json"));
  MT_ASSIGN_OR_RETURN(auto res, Call("GET", path));
  return ParseBody(res, "exec inspect");
}

Status EngineClient::ExecResize(const std::string& exec_id, unsigned short rows, unsigned short cols) {
  MT_ASSIGN_OR_RETURN(std::string path, Path("/exec/" + exec_id + "/resize?h=" + std::to_string(rows) +
                                             "&w=" + std::to_string(cols)));
  MT_RETURN_IF_ERROR(Call("POST", path));
  return {};
}

Status EngineClient::Events(const Json& filters, const std::function<void(const Json&)>& on_event,
                            const std::atomic<bool>* cancel, const std::string& since) {
  std::string q = "/events?filters=" + Escape(filters.dump());
  if (!since.empty()) q += "&since=" + since;
  MT_ASSIGN_OR_RETURN(std::string path, Path(q));
  std::string buf;
  std::function<bool(std::string_view)> sink = [&](std::string_view d) {
    buf.append(d);
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      Json e = Json::parse(buf.substr(0, nl), nullptr, false);
      buf.erase(0, nl + 1);
      if (e.is_object()) on_event(e);
    }
    return true;
  };
  MT_ASSIGN_OR_RETURN(auto res, Perform("GET", path, "", 0, &sink, cancel));
  if (res.status >= 300) return std::unexpected(EngineError(res.status, res.body, "events"));
  if (cancel && cancel->load()) return {};
  return Unavailable("dockerd closed the events stream");
}

EventWatcher::EventWatcher(EngineClient* client, std::function<void(const Json&)> on_event,
                           std::function<void()> on_reconnect, std::function<void(const std::string&)> on_lost)
    : client_(client), on_event_(std::move(on_event)), on_reconnect_(std::move(on_reconnect)),
      on_lost_(std::move(on_lost)) {
  thread_ = std::thread([this] { Run(); });
}

EventWatcher::~EventWatcher() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void EventWatcher::Run() {
  Json filters = {{"type", {"container"}}, {"event", {"die", "oom", "start", "health_status"}}};
  auto backoff = std::chrono::milliseconds(200);
  while (!stop_) {
    auto ping = client_->Call("GET", "/_ping", "", 3000);
    if (ping) {
      // The stream replays from a second before on_reconnect re-read the containers, so an
      // event between the two is seen twice (harmless: an exit is recorded once), never lost.
      std::string since = std::to_string(time(nullptr) - 1);
      connected_ = true;
      backoff = std::chrono::milliseconds(200);
      if (on_reconnect_) on_reconnect_();
      // A stream that is open but dead (dockerd wedged, the socket half gone) says nothing:
      // /_ping every 10 s, and a ping that fails ends the stream, as if dockerd had closed it.
      std::atomic<bool> cancel{false};
      std::thread pinger([&] {
        auto next = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!cancel) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          if (stop_) break;  // the stream ends at once: Perform reads `cancel` as it goes
          if (std::chrono::steady_clock::now() < next) continue;
          if (!client_->Call("GET", "/_ping", "", 5000)) {
            spdlog::warn("docker: /_ping failed while following events: reconnecting");
            break;
          }
          next = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        }
        cancel = true;
      });
      auto st = client_->Events(filters, [&](const Json& e) {
        if (on_event_) on_event_(e);
      }, &cancel, since);
      cancel = true;
      pinger.join();
      if (stop_) break;
      spdlog::warn("docker: events stream ended: {}", st ? "closed" : st.error().message());
      auto again = client_->Call("GET", "/_ping", "", 3000);
      if (!again && on_lost_) on_lost_(again.error().message());
    }
    connected_ = false;
    auto until = std::chrono::steady_clock::now() + backoff;
    while (!stop_ && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(5));
  }
}

Result<std::unique_ptr<HijackedStream>> HijackedStream::Open(EngineClient* client, const std::string& path,
                                                             const std::string& body) {
  // A plain Unix socket, not a libcurl handle: after the upgrade one thread reads the output
  // while another writes stdin, and a curl easy handle must never be used from two threads.
  // recv and send on one socket from two threads are fine.
  std::unique_ptr<HijackedStream> s(new HijackedStream());
  const std::string& sock_path = client->socket();
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (sock_path.size() >= sizeof(addr.sun_path)) return InvalidArgument("docker socket path too long: " + sock_path);
  std::memcpy(addr.sun_path, sock_path.c_str(), sock_path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoError("socket", errno);
  s->fd_ = fd;
  if (::connect(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Unavailable("dockerd is not reachable at " + sock_path + ": " + std::strerror(errno));
  }
  std::string req = "POST " + path + " HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
                    "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body;
  MT_RETURN_IF_ERROR(s->Write(req));
  // The response headers: 101 UPGRADED (or 200 on older engines), else an error body.
  std::string head;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (head.find("\r\n\r\n") == std::string::npos) {
    if (std::chrono::steady_clock::now() > deadline) return Unavailable("exec start: no answer from dockerd");
    auto chunk = s->Read(std::chrono::milliseconds(1000));
    if (!chunk) continue;
    if (chunk->empty()) return Unavailable("exec start: dockerd closed the connection");
    head += *chunk;
  }
  size_t end = head.find("\r\n\r\n");
  s->pending_ = head.substr(end + 4);
  int status = 0;
  std::sscanf(head.c_str(), "HTTP/1.%*d %d", &status);
  if (status != 101 && status != 200) {
    return std::unexpected(EngineError(status, s->pending_, "exec start"));
  }
  return s;
}

HijackedStream::~HijackedStream() {
  if (fd_ >= 0) ::close(fd_);
}

Status HijackedStream::Write(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd p = {fd_, POLLOUT, 0};
      if (poll(&p, 1, 5000) == 0) return Unavailable("exec: the command is not reading its input");
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Unavailable(std::string("exec: writing to dockerd: ") + std::strerror(errno));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

void HijackedStream::CloseWrite() { ::shutdown(fd_, SHUT_WR); }

void HijackedStream::Shutdown() { ::shutdown(fd_, SHUT_RDWR); }

Result<std::string> HijackedStream::Read(std::chrono::milliseconds timeout) {
  if (!pending_.empty()) return std::exchange(pending_, std::string());
  if (eof_) return std::string();
  struct pollfd p = {fd_, POLLIN, 0};
  int n = poll(&p, 1, static_cast<int>(timeout.count()));
  if (n == 0 || (n < 0 && errno == EINTR)) return Unavailable("timeout");
  char buf[16384];
  ssize_t got = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
  if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return Unavailable("timeout");
  if (got <= 0) {
    eof_ = true;
    return std::string();
  }
  return std::string(buf, static_cast<size_t>(got));
}

}  // namespace mentat::docker
