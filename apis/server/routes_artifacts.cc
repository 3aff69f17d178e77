// The API server's artifact routes: app rootfs archives, content-addressed, under /v1/artifacts.
#include <fcntl.h>
#include <unistd.h>

#include <utility>

#include <spdlog/spdlog.h>

#include "apis/server/api_helpers.h"
#include "apis/server/api_server.h"
#include "apis/server/artifact_references.h"
#include "apis/server/authorization.h"
#include "apis/service.h"

namespace mentat {
namespace {

// Uploading an artifact is deploying code: the operator or admin role. Any token may read one
// (agents fetch them with their node token).
Status CanUploadArtifacts(const Principal& who) {
  if (who.role == Role::kAdmin || who.role == Role::kOperator) return {};
  return Forbidden(who, "upload artifacts", "the operator or admin role");
}

std::string Mebibytes(uint64_t bytes) {
  if (bytes % (1 << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes) + " bytes";
}

Error InvalidDigest(const std::string& digest) {
  return Error(Code::kInvalidArgument, "invalid artifact digest",
               {{"digest", 0, 0,
                 "\"" + digest.substr(0, 80) + "\" is not sha256: and 64 lower-case hex digits"}});
}

// The HTTP server's sink for the body of PUT /v1/artifacts/DIGEST: the store's upload, written
// as the body arrives. The store knows no HTTP; this is all that joins them.
class UploadSink : public BodySink {
 public:
  explicit UploadSink(std::shared_ptr<ArtifactUpload> upload) : upload_(std::move(upload)) {}
  Status Write(const char* data, size_t n) override { return upload_->Write(data, n); }
  const std::shared_ptr<ArtifactUpload>& upload() const { return upload_; }

 private:
  std::shared_ptr<ArtifactUpload> upload_;
};

Json ArtifactJson(const ArtifactInfo& a) {
  return {{"digest", a.digest}, {"size", a.size}, {"createdAt", a.created_at}};
}

}  // namespace

// Artifacts: app rootfs archives, content-addressed. Before the /v1/:kind routes, which
// would take these paths for a kind.
void ApiServer::ArtifactRoutes() {
  if (opts_.artifacts) {
    // The body streams to a temp file as it arrives. The head is checked here already, so a
    // refused upload writes nothing; the handler checks again and answers.
    http_->StreamBody("PUT", "/v1/artifacts/:digest", opts_.artifacts->max_bytes(),
                      [this](const HttpRequest& head) -> Result<BodySinkPtr> {
                        MT_ASSIGN_OR_RETURN(auto who, Authenticate(head));
                        MT_RETURN_IF_ERROR(CanUploadArtifacts(who));
                        const std::string& digest = head.matches[0];
                        // Stored already, or not a digest: the body is read and dropped.
                        if (!IsArtifactDigest(digest) || opts_.artifacts->Stat(digest)) {
                          return BodySinkPtr();
                        }
                        MT_ASSIGN_OR_RETURN(auto upload, opts_.artifacts->Begin());
                        return BodySinkPtr(std::make_shared<UploadSink>(std::move(upload)));
                      });
  }
  Get("/v1/artifacts", [this](const HttpRequest&, HttpResponse& res, const Principal& who) {
    ListArtifacts(res, who);
  });
  // GET downloads (a piece at a time as the client takes it), HEAD answers whether it is
  // stored and its size.
  Get("/v1/artifacts/:digest", [this](const HttpRequest& req, HttpResponse& res,
                                      const Principal& who) { GetArtifact(req, res, who); });
  Put("/v1/artifacts/:digest", [this](const HttpRequest& req, HttpResponse& res,
                                      const Principal& who) { PutArtifact(req, res, who); });
}

// With no artifact store, says so and answers true; else adds the size limit's header.
bool ApiServer::ArtifactsOff(HttpResponse& res) {
  if (opts_.artifacts) {
    res.headers.emplace_back("X-Mentat-Artifact-Max-Bytes",
                             std::to_string(opts_.artifacts->max_bytes()));
    return false;
  }
  SendError(res, Error(Code::kUnavailable, "this server stores no artifacts"));
  return true;
}

void ApiServer::ListArtifacts(HttpResponse& res, const Principal& who) {
  if (ArtifactsOff(res)) return;
  if (who.role == Role::kNode) {
    return SendError(res, Forbidden(who, "list artifacts", "a role other than node").error());
  }
  auto list = opts_.artifacts->List();
  if (!list) return SendError(res, list.error());
  auto refs = ArtifactReferences(*store_);
  if (!refs) return SendError(res, refs.error());
  Json items = Json::array();
  for (const auto& a : *list) {
    Json item = ArtifactJson(a);
    auto it = refs->find(a.digest);
    item["referencedBy"] = it == refs->end() ? Json::array() : Json(it->second);
    items.push_back(std::move(item));
  }
  SendJson(res, 200, {{"kind", "ArtifactList"},
                      {"maxBytes", opts_.artifacts->max_bytes()},
                      {"items", items}});
}

void ApiServer::GetArtifact(const HttpRequest& req, HttpResponse& res, const Principal& who) {
  if (ArtifactsOff(res)) return;
  const std::string& digest = req.matches[0];
  if (!IsArtifactDigest(digest)) return SendError(res, InvalidDigest(digest));
  if (auto st = node_auth_.CanReadArtifact(who, digest); !st) return SendError(res, st.error());
  opts_.artifacts->Touch(digest);  // before the look: see ArtifactStore::CollectGarbage
  auto info = opts_.artifacts->Stat(digest);
  if (!info) {
    return SendError(res,
                     Error(Code::kNotFound, "artifact " + digest + " is not on this server"));
  }
  // Opened now: a garbage collection after the look finds it open and cannot take it away.
  int fd = -1;
  if (req.method != "HEAD") {
    fd = ::open(opts_.artifacts->PathOf(digest).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return SendError(res, ErrnoError("artifact " + digest, errno).error());
  }
  res.status = 200;
  res.content_type = "application/octet-stream";
  res.headers.emplace_back("Content-Length", std::to_string(info->size));
  res.headers.emplace_back("X-Mentat-Digest", digest);
  if (req.method == "HEAD") return;
  // Closed by the stream, or here if the client left before the stream began.
  auto file = std::shared_ptr<int>(new int(fd), [](int* f) {
    if (*f >= 0) ::close(*f);
    delete f;
  });
  uint64_t size = info->size;
  res.stream = [file, size](const std::shared_ptr<HttpStream>& stream) {
    stream->SendFile(std::exchange(*file, -1), 0, size);
  };
}

void ApiServer::PutArtifact(const HttpRequest& req, HttpResponse& res, const Principal& who) {
  if (ArtifactsOff(res)) return;
  if (auto st = CanUploadArtifacts(who); !st) return SendError(res, st.error());
  if (req.body_error) {
    if (req.body_error->code() != Code::kTooLarge) return SendError(res, *req.body_error);
    uint64_t max = opts_.artifacts->max_bytes();
    return SendError(res, Error(Code::kTooLarge,
                                "artifact of " + std::to_string(req.body_bytes) +
                                    " bytes is over this server's limit of " + Mebibytes(max) +
                                    " (mentat-server --max-artifact-mb)",
                                {{"body", 0, 0, "at most " + std::to_string(max) + " bytes"}}));
  }
  const std::string& digest = req.matches[0];
  if (!IsArtifactDigest(digest)) return SendError(res, InvalidDigest(digest));
  std::shared_ptr<ArtifactUpload> upload;
  if (auto sink = std::dynamic_pointer_cast<UploadSink>(req.sink)) upload = sink->upload();
  if (!upload) {
    if (auto info = opts_.artifacts->Stat(digest)) {
      // Deduplicated: the same bytes are stored already (the body was not kept).
      opts_.artifacts->Touch(digest);
      Json out = ArtifactJson(*info);
      out["created"] = false;
      return SendJson(res, 200, out);
    }
    // A request pipelined behind another one passed the gate unseen: its body came in
    // memory, under the ordinary limit.
    auto begun = opts_.artifacts->Begin();
    if (!begun) return SendError(res, begun.error());
    if (auto st = (*begun)->Write(req.body.data(), req.body.size()); !st) {
      return SendError(res, st.error());
    }
    upload = std::move(*begun);
  }
  auto done = opts_.artifacts->Commit(*upload, digest);
  if (!done) return SendError(res, done.error());
  if (done->created) {
    spdlog::info("artifact {} stored ({} bytes, by {})", digest, done->info.size, who.name);
  }
  Json out = ArtifactJson(done->info);
  out["created"] = done->created;
  SendJson(res, done->created ? 201 : 200, out);
}

}  // namespace mentat
