#include "apis/client.h"

#include <httplib.h>
#include <openssl/x509.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

namespace mentat {
namespace {

// A request that got no response: the server is unreachable (retry later), or its TLS
// certificate could not be verified (retrying will not help).
// httplib's names for what went wrong on the wire ("Connection", "Read"), as a sentence.
std::string TransportProblem(httplib::Error err) {
  switch (err) {
    case httplib::Error::Connection:
      return "could not connect (is a server running there?)";
    case httplib::Error::ConnectionTimeout:
      return "the connection timed out";
    case httplib::Error::Read:
      return "the connection broke while reading the response";
    case httplib::Error::Write:
      return "the connection broke while sending the request";
    case httplib::Error::Canceled:
      return "the request was cancelled";
    default:
      return httplib::to_string(err);
  }
}

Error TransportError(const httplib::Client& cli, httplib::Error err, const std::string& server,
                     const std::string& what) {
  if (err == httplib::Error::SSLServerVerification) {
    long v = cli.get_openssl_verify_result();
    std::string why =
        v != X509_V_OK
            ? std::string(X509_verify_cert_error_string(v)) +
                  " (give the CA that signed it with --ca-file, MENTAT_CA_FILE or ca_file: in "
                  "~/.mentat/config)"
            : "its certificate does not name this host (use the name it was issued for)";
    return Error(Code::kFailedPrecondition,
                 "cannot verify the TLS certificate of " + server + ": " + why);
  }
  if (err == httplib::Error::SSLLoadingCerts) {
    return Error(Code::kFailedPrecondition,
                 "cannot load the CA certificates to verify " + server + " (is the CA file PEM?)");
  }
  if (err == httplib::Error::SSLConnection) {
    return Error(Code::kUnavailable,
                 what + " " + server + ": the TLS handshake failed; is it an https server?");
  }
  return Error(Code::kUnavailable, what + " " + server + ": " + TransportProblem(err));
}

Result<Json> Decode(const httplib::Result& res, const httplib::Client& cli,
                    const std::string& server) {
  if (!res) {
    return std::unexpected(
        TransportError(cli, res.error(), server, "cannot reach the Mentat server at"));
  }
  if (res->status >= 200 && res->status < 300) {
    Json j = Json::parse(res->body, nullptr, false);
    if (j.is_discarded()) return Internal("server sent a response that is not JSON");
    return j;
  }
  return std::unexpected(Error::FromJson(res->status, res->body));
}

}  // namespace

namespace {

// One address as Create takes it, normalized to scheme://host[:port].
Result<std::string> NormalizeServer(const std::string& server) {
  std::string s = server;
  while (!s.empty() && s.back() == '/') s.pop_back();
  if (s.rfind("http://", 0) != 0 && s.rfind("https://", 0) != 0) {
    if (s.find("://") != std::string::npos) {
      return InvalidArgument("server address \"" + server +
                             "\" must start with http:// or https://");
    }
    s = "http://" + s;
  }
  // Anything after host:port (a path, a query) would be silently dropped by the HTTP client.
  auto authority = s.substr(s.find("://") + 3);
  if (authority.empty() || authority.find_first_of("/?#") != std::string::npos) {
    return InvalidArgument("server address \"" + server + "\" must be scheme://host[:port]");
  }
  return s;
}

// No connection was made: the request was not sent, so another server may take it.
bool NotConnected(const httplib::Result& res) {
  return !res && (res.error() == httplib::Error::Connection ||
                  res.error() == httplib::Error::ConnectionTimeout);
}

}  // namespace

ApiClient::ApiClient(std::vector<std::string> servers, ClientOptions options)
    : servers_(std::move(servers)), options_(std::move(options)) {}
ApiClient::~ApiClient() = default;

Result<std::unique_ptr<ApiClient>> ApiClient::Create(const std::string& server,
                                                     const std::string& token) {
  ClientOptions o;
  o.token = token;
  return Create(server, o);
}

Result<std::unique_ptr<ApiClient>> ApiClient::Create(const std::string& server,
                                                     const ClientOptions& options) {
  std::vector<std::string> servers;
  for (size_t start = 0;;) {
    size_t comma = server.find(',', start);
    std::string one = server.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (one.empty() && (comma != std::string::npos || !servers.empty())) {
      return InvalidArgument("server addresses \"" + server + "\": an empty one between commas");
    }
    MT_ASSIGN_OR_RETURN(std::string normalized, NormalizeServer(one));
    servers.push_back(std::move(normalized));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (!options.ca_file.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(options.ca_file, ec)) {
      return InvalidArgument("CA file " + options.ca_file + ": no such file");
    }
  }
  return std::unique_ptr<ApiClient>(new ApiClient(std::move(servers), options));
}

std::string ApiClient::servers() const {
  std::string all;
  for (const auto& s : servers_) all += (all.empty() ? "" : ",") + s;
  return all;
}

void ApiClient::MoveOnFrom(const std::string& server) {
  size_t at = current_.load();
  if (servers_[at] != server) return;  // another request moved on already
  current_.compare_exchange_strong(at, (at + 1) % servers_.size());
}

struct ApiClient::Sent {
  std::unique_ptr<httplib::Client> cli;
  std::string server;
  httplib::Result res{std::unique_ptr<httplib::Response>(), httplib::Error::Unknown, httplib::Headers{}};
};

template <class Send>
ApiClient::Sent ApiClient::SendToAny(Send send) {
  Sent sent;
  for (size_t tried = 0; tried < servers_.size(); ++tried) {
    sent.server = server();
    sent.cli = NewClient(sent.server);
    sent.res = send(*sent.cli);
    if (!NotConnected(sent.res)) break;
    MoveOnFrom(sent.server);
  }
  return sent;
}

std::unique_ptr<httplib::Client> ApiClient::NewClient(const std::string& server) const {
  auto cli = std::make_unique<httplib::Client>(server);
  if (server.rfind("https://", 0) == 0) {
    cli->enable_server_certificate_verification(true);
    if (!options_.ca_file.empty()) cli->set_ca_cert_path(options_.ca_file.c_str());
  }
  cli->set_connection_timeout(5, 0);
  cli->set_tcp_nodelay(true);  // requests go out as headers then body: no Nagle delay
  // cpp-httplib (as Debian builds it) asks for br/gzip by default, and the server would then
  // compress every response and watch event; on the links agents and mt use, that costs more
  // CPU and latency than it saves.
  cli->set_default_headers({{"Accept-Encoding", "identity"}});
  cli->set_read_timeout(30, 0);
  cli->set_write_timeout(30, 0);
  if (!options_.token.empty()) cli->set_bearer_token_auth(options_.token.c_str());
  return cli;
}

std::string ApiClient::Path(const std::string& plural, const std::string& name,
                            const RequestOptions& o, const std::string& extra_query) const {
  std::string path = "/v1/" + plural;
  if (!name.empty()) path += "/" + httplib::detail::encode_query_param(name);
  std::string q;
  auto add = [&](const std::string& kv) { q += (q.empty() ? "?" : "&") + kv; };
  if (!o.ns.empty()) add("namespace=" + httplib::detail::encode_query_param(o.ns));
  if (!o.label_selector.empty()) {
    add("labelSelector=" + httplib::detail::encode_query_param(o.label_selector));
  }
  if (o.dry_run) add("dryRun=true");
  if (!extra_query.empty()) add(extra_query);
  return path + q;
}

Result<Json> ApiClient::Get(const std::string& plural, const std::string& name,
                            const RequestOptions& o) {
  auto s = SendToAny([&](httplib::Client& cli) { return cli.Get(Path(plural, name, o)); });
  return Decode(s.res, *s.cli, s.server);
}

Result<Json> ApiClient::List(const std::string& plural, const RequestOptions& o) {
  auto s = SendToAny([&](httplib::Client& cli) { return cli.Get(Path(plural, "", o)); });
  return Decode(s.res, *s.cli, s.server);
}

Result<Json> ApiClient::Put(const std::string& plural, const std::string& name,
                            const std::string& body, const RequestOptions& o) {
  bool json = !body.empty() && (body.front() == '{');
  auto s = SendToAny([&](httplib::Client& cli) {
    return cli.Put(Path(plural, name, o), body, json ? "application/json" : "application/yaml");
  });
  return Decode(s.res, *s.cli, s.server);
}

Result<Json> ApiClient::PutStatus(const std::string& plural, const std::string& name,
                                  const Json& obj, const RequestOptions& o) {
  auto s = SendToAny([&](httplib::Client& cli) {
    return cli.Put(Path(plural, name + "/status", o), obj.dump(), "application/json");
  });
  return Decode(s.res, *s.cli, s.server);
}

Result<Json> ApiClient::Delete(const std::string& plural, const std::string& name,
                               const RequestOptions& o) {
  auto s = SendToAny([&](httplib::Client& cli) { return cli.Delete(Path(plural, name, o)); });
  return Decode(s.res, *s.cli, s.server);
}

Result<Json> ApiClient::Apply(const Json& documents, bool dry_run, const std::string& ns) {
  ApplyOptions o;
  o.dry_run = dry_run;
  o.ns = ns;
  return Apply(documents, o);
}

Result<Json> ApiClient::Apply(const Json& documents, const ApplyOptions& a) {
  Json body = {{"documents", documents}};
  RequestOptions o;
  o.ns = a.ns;
  o.dry_run = a.dry_run;
  std::string extra;
  if (!a.applyset.empty()) {
    extra = "applyset=" + httplib::detail::encode_query_param(a.applyset);
  }
  if (a.prune) extra += std::string(extra.empty() ? "" : "&") + "prune=true";
  auto s = SendToAny([&](httplib::Client& cli) {
    return cli.Post(Path("apply", "", o, extra), body.dump(), "application/json");
  });
  return Decode(s.res, *s.cli, s.server);
}

Result<Json> ApiClient::PostRaw(const std::string& path, const std::string& body,
                               const std::string& content_type) {
  auto s = SendToAny([&](httplib::Client& cli) { return cli.Post(path, body, content_type); });
  return Decode(s.res, *s.cli, s.server);
}

Result<std::string> ApiClient::GetRaw(const std::string& path) {
  auto s = SendToAny([&](httplib::Client& cli) {
    cli.set_read_timeout(300, 0);
    return cli.Get(path);
  });
  if (!s.res) {
    return std::unexpected(
        TransportError(*s.cli, s.res.error(), s.server, "cannot reach the Mentat server at"));
  }
  if (s.res->status != 200) return std::unexpected(Error::FromJson(s.res->status, s.res->body));
  return s.res->body;
}

Status ApiClient::GetStream(const std::string& path,
                            const std::function<bool(const char*, size_t)>& on_data,
                            const std::atomic<bool>* stop,
                            std::map<std::string, std::string>* response_headers) {
  const std::string server = this->server();
  auto cli = NewClient(server);
  cli->set_read_timeout(60, 0);
  int status = 0;
  std::string error_body;
  auto res = cli->Get(
      path, httplib::Headers{},
      [&](const httplib::Response& r) {
        status = r.status;
        if (response_headers) {
          for (const auto& [k, v] : r.headers) (*response_headers)[k] = v;
        }
        return true;
      },
      [&](const char* data, size_t len) {
        if (stop && stop->load()) return false;
        if (status != 200) {
          error_body.append(data, len);
          return true;
        }
        return on_data(data, len);
      });
  if (stop && stop->load()) return {};
  if (status != 0 && status != 200) return std::unexpected(Error::FromJson(status, error_body));
  if (NotConnected(res)) MoveOnFrom(server);  // the caller's retry goes to the next one
  if (!res && res.error() != httplib::Error::Canceled) {
    return Unavailable("cannot reach " + server + ": " + httplib::to_string(res.error()));
  }
  return {};
}

Result<std::optional<uint64_t>> ApiClient::StatArtifact(const std::string& digest,
                                                        uint64_t* max_bytes) {
  auto s = SendToAny([&](httplib::Client& cli) { return cli.Head("/v1/artifacts/" + digest); });
  const auto& res = s.res;
  if (!res) {
    return std::unexpected(
        TransportError(*s.cli, res.error(), s.server, "cannot reach the Mentat server at"));
  }
  if (max_bytes) {
    *max_bytes = 0;
    if (res->has_header("X-Mentat-Artifact-Max-Bytes")) {
      *max_bytes = std::strtoull(res->get_header_value("X-Mentat-Artifact-Max-Bytes").c_str(),
                                 nullptr, 10);
    }
  }
  if (res->status == 404) return std::optional<uint64_t>();
  if (res->status != 200) {
    // A HEAD answer has no body to say why: the status must do.
    Error e = Error::FromJson(res->status, "");
    return std::unexpected(Error(e.code(), "HEAD /v1/artifacts/" + digest + " on " + s.server +
                                               " answered HTTP " + std::to_string(res->status) +
                                               " (" + e.Reason() + ")"));
  }
  return std::optional<uint64_t>(
      std::strtoull(res->get_header_value("Content-Length").c_str(), nullptr, 10));
}

Result<Json> ApiClient::PutArtifact(const std::string& digest, const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("opening " + path, errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoError("stat " + path, err);
  }
  std::string read_error;
  auto s = SendToAny([&](httplib::Client& cli) {
    // The server fsyncs all of it before it answers.
    cli.set_read_timeout(300, 0);
    return cli.Put(
      "/v1/artifacts/" + digest, static_cast<size_t>(st.st_size),
      [&](size_t offset, size_t length, httplib::DataSink& sink) {
        char buf[1 << 16];
        ssize_t n = ::pread(fd, buf, std::min(length, sizeof(buf)), static_cast<off_t>(offset));
        if (n <= 0) {
          read_error = n < 0 ? std::strerror(errno) : "the file got shorter";
          return false;
        }
        return sink.write(buf, static_cast<size_t>(n));
      },
      "application/octet-stream");
  });
  ::close(fd);
  if (!read_error.empty()) return Internal("reading " + path + ": " + read_error);
  return Decode(s.res, *s.cli, s.server);
}

Status ApiClient::GetArtifact(const std::string& digest,
                              const std::function<bool(const char*, size_t)>& on_data) {
  return GetStream("/v1/artifacts/" + digest, on_data);
}

Status ApiClient::Watch(const std::string& plural, int64_t resource_version,
                        const RequestOptions& o, const std::function<bool(const Json&)>& on_event,
                        const std::atomic<bool>* stop) {
  const std::string server = this->server();
  auto cli = NewClient(server);
  {
    std::lock_guard<std::mutex> lock(watches_mu_);
    if (cancelled_) return {};
    watches_.insert(cli.get());
  }
  struct Unregister {
    ApiClient* self;
    httplib::Client* cli;
    ~Unregister() {
      std::lock_guard<std::mutex> lock(self->watches_mu_);
      self->watches_.erase(cli);
    }
  } unregister{this, cli.get()};
  // The server sends a BOOKMARK at least every few seconds, so a silent minute means it is gone.
  cli->set_read_timeout(60, 0);
  std::string buffer;
  bool stopped_by_caller = false;
  std::string query = "watch=true";
  if (resource_version > 0) query += "&resourceVersion=" + std::to_string(resource_version);
  int status = 0;
  std::string error_body;
  auto res = cli->Get(
      Path(plural, "", o, query), httplib::Headers{},
      [&](const httplib::Response& r) {
        status = r.status;
        return true;
      },
      [&](const char* data, size_t len) {
        if (stop && stop->load()) {
          stopped_by_caller = true;
          return false;
        }
        if (status != 200) {
          error_body.append(data, len);
          return true;
        }
        buffer.append(data, len);
        size_t nl;
        while ((nl = buffer.find('\n')) != std::string::npos) {
          std::string line = buffer.substr(0, nl);
          buffer.erase(0, nl + 1);
          if (line.empty()) continue;
          Json ev = Json::parse(line, nullptr, false);
          if (ev.is_discarded()) continue;
          if (!on_event(ev)) {
            stopped_by_caller = true;
            return false;
          }
        }
        return !(stop && stop->load());
      });
  {
    std::lock_guard<std::mutex> lock(watches_mu_);
    if (cancelled_) return {};
  }
  if (stopped_by_caller || (stop && stop->load())) return {};
  if (status != 0 && status != 200) return std::unexpected(Error::FromJson(status, error_body));
  if (NotConnected(res)) MoveOnFrom(server);  // the caller's retry goes to the next one
  if (!res) {
    return std::unexpected(
        TransportError(*cli, res.error(), server, "watch of " + plural + " ended on"));
  }
  return Unavailable("watch of " + plural + " on " + server + " ended by the server");
}

void ApiClient::CancelWatches() {
  std::lock_guard<std::mutex> lock(watches_mu_);
  cancelled_ = true;
  for (auto* cli : watches_) cli->stop();
}

void ApiClient::ResumeWatches() {
  std::lock_guard<std::mutex> lock(watches_mu_);
  cancelled_ = false;
}

}  // namespace mentat
