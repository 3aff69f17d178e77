// The HTTP client of the Mentat API, used by `mt` and by agents. Every call returns the
// decoded object or the server's error body as an Error (field details included): 401 is
// kUnauthenticated, 403 kForbidden, and no response at all kUnavailable (or
// kFailedPrecondition when the server's TLS certificate could not be verified).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "apis/error.h"
#include "apis/object.h"

namespace httplib {
class Client;
}

namespace mentat {

// How to reach and authenticate to the server.
struct ClientOptions {
  std::string token;    // sent as "Authorization: Bearer <token>" when set
  std::string ca_file;  // PEM bundle that signs an https:// server's certificate; "" = system CAs
};

struct RequestOptions {
  std::string ns;              // ?namespace=
  std::string label_selector;  // ?labelSelector=
  bool dry_run = false;
};

// POST /v1/apply parameters.
struct ApplyOptions {
  bool dry_run = false;
  std::string ns;        // ?namespace=: for manifests that name none
  std::string applyset;  // ?applyset=: the server labels every applied object mentat.io/applyset
  bool prune = false;    // ?prune=true: delete the applyset's objects this request omits
};

class ApiClient {
 public:
  // server: "http://host:port" or "https://host:port" (a bare "host:port" means http), or
  // several, separated by commas: the members of a replicated control plane. A request goes to
  // the server in use; when no connection can be made to it (nothing was sent), it goes to the
  // next ones in turn, and the first one reached stays in use. A watch or a stream that cannot
  // connect moves the client on to the next server for the caller's retry.
  // https always verifies the server's certificate and host name, against options.ca_file or
  // else the system's CAs. Errors: kInvalidArgument for a malformed URL (naming it) or a
  // missing ca_file.
  static Result<std::unique_ptr<ApiClient>> Create(const std::string& server,
                                                   const std::string& token = "");
  static Result<std::unique_ptr<ApiClient>> Create(const std::string& server,
                                                   const ClientOptions& options);
  ~ApiClient();

  Result<Json> Get(const std::string& plural, const std::string& name,
                   const RequestOptions& o = {});
  Result<Json> List(const std::string& plural, const RequestOptions& o = {});
  // body: YAML or JSON text of one object, in any accepted manifest form.
  Result<Json> Put(const std::string& plural, const std::string& name, const std::string& body,
                   const RequestOptions& o = {});
  Result<Json> PutStatus(const std::string& plural, const std::string& name, const Json& obj,
                         const RequestOptions& o = {});
  Result<Json> Delete(const std::string& plural, const std::string& name,
                      const RequestOptions& o = {});
  // GET a raw (non-JSON) resource, e.g. /v1/snapshot.
  Result<std::string> GetRaw(const std::string& path);
  // POST `body` to a raw `path` (with its query) and decode the JSON answer (any 2xx).
  Result<Json> PostRaw(const std::string& path, const std::string& body,
                       const std::string& content_type = "application/json");
  // GET `path` and hand the body to `on_data` as it arrives (a log that follows), until the
  // response ends, `on_data` returns false, or `stop` becomes true. A non-200 answer is an
  // Error decoded from its body.
  Status GetStream(const std::string& path, const std::function<bool(const char*, size_t)>& on_data,
                   const std::atomic<bool>* stop = nullptr,
                   std::map<std::string, std::string>* response_headers = nullptr);
  // POST /v1/apply: documents [{source, text}], applied as one transaction.
  Result<Json> Apply(const Json& documents, bool dry_run, const std::string& ns = "");
  Result<Json> Apply(const Json& documents, const ApplyOptions& o);

  // Artifacts (/v1/artifacts/DIGEST, DIGEST = "sha256:<hex>"): app rootfs archives.
  // StatArtifact (HEAD): the stored size, or nullopt when the server does not have it.
  // `max_bytes`, when given, gets the server's limit on uploads (0 if it did not say).
  Result<std::optional<uint64_t>> StatArtifact(const std::string& digest,
                                               uint64_t* max_bytes = nullptr);
  // PUT the file at `path` as the artifact `digest`, streamed from disk. The answer is
  // {digest, size, createdAt, created}; created is false when the server had it already.
  Result<Json> PutArtifact(const std::string& digest, const std::string& path);
  // GET the artifact: its bytes go to `on_data` as they arrive (false from it stops).
  Status GetArtifact(const std::string& digest,
                     const std::function<bool(const char*, size_t)>& on_data);

  // Streams watch events ({type, object}) from `resource_version` until `on_event` returns
  // false, `stop` becomes true, or the stream ends (then an error says why).
  Status Watch(const std::string& plural, int64_t resource_version, const RequestOptions& o,
               const std::function<bool(const Json&)>& on_event,
               const std::atomic<bool>* stop = nullptr);

  // Ends every Watch in progress at once (they return as if stopped by the caller), and every
  // later one as soon as it starts, until ResumeWatches.
  void CancelWatches();
  // Lets Watch run again after CancelWatches (a follower whose deadline cancelled them, asked to
  // follow on).
  void ResumeWatches();

  // The server in use, and all of them as given to Create (normalized, comma-separated).
  std::string server() const { return servers_[current_.load()]; }
  std::string servers() const;

 private:
  ApiClient(std::vector<std::string> servers, ClientOptions options);
  std::string Path(const std::string& plural, const std::string& name, const RequestOptions& o,
                   const std::string& extra_query = "") const;
  std::unique_ptr<httplib::Client> NewClient(const std::string& server) const;
  // A request sent by `send` on a client of the server in use, or of the next ones when that
  // one cannot be connected to; with the client and server that answered (or the last tried).
  struct Sent;
  template <class Send>
  Sent SendToAny(Send send);
  // After a connection to `server` could not be made: the next one is in use.
  void MoveOnFrom(const std::string& server);

  std::vector<std::string> servers_;
  std::atomic<size_t> current_{0};
  ClientOptions options_;
  std::mutex watches_mu_;
  std::set<httplib::Client*> watches_;
  bool cancelled_ = false;
};

}  // namespace mentat
