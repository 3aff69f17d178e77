// The API server's watch: GET /v1/:kind?watch=true, the store's events for a kind as an NDJSON
// stream, with bookmarks.
#include <utility>

#include "apis/server/api_helpers.h"
#include "apis/server/api_server.h"

namespace mentat {
namespace {

// One watch response: store events in, NDJSON lines out. Used on the loop thread only; it
// holds no thread while it waits.
struct WatchStream : std::enable_shared_from_this<WatchStream> {
  // How far a client may lag, in bytes the kernel has not taken yet, before this stream stops
  // reading its watcher. The watcher's own bounded buffer then fills, and it is closed (Gone).
  static constexpr size_t kMaxPending = 1 << 20;

  WatcherPtr watcher;
  std::optional<LabelSelector> selector;
  std::string ns;
  std::string kind;
  int64_t last_rv = 0;
  std::chrono::steady_clock::time_point last_sent = std::chrono::steady_clock::now();
  std::weak_ptr<HttpStream> http;
  std::shared_ptr<std::atomic<bool>> scheduled = std::make_shared<std::atomic<bool>>(false);

  void Drain() {
    auto h = http.lock();
    if (!h || !h->open()) return;
    std::string batch;
    while (h->Pending() + batch.size() < kMaxPending) {
      auto ev = watcher->TryNext();
      if (!ev) {
        // Closed: it fell behind, or the server is shutting down. Say why, then end.
        Json e = {{"type", "ERROR"}, {"object", ev.error().ToJson()}};
        batch += e.dump() + "\n";
        h->Write(batch);
        h->End();
        return;
      }
      if (!ev->has_value()) break;
      const WatchEvent& we = ***ev;
      last_rv = we.revision;
      if (!ns.empty() && NamespaceOf(we.object) != ns) continue;
      if (selector && !selector->Matches(we.object)) continue;
      batch += *we.json;
      batch += '\n';
    }
    if (!batch.empty()) {
      h->Write(batch);
      last_sent = std::chrono::steady_clock::now();
    }
    if (h->Pending() >= kMaxPending) {
      std::weak_ptr<WatchStream> weak = shared_from_this();
      h->WhenDrained([weak] {
        if (auto s = weak.lock()) s->Drain();
      });
    }
  }

  // A bookmark never claims more than this stream has delivered.
  void Bookmark(std::chrono::seconds interval) {
    auto h = http.lock();
    if (!h || !h->open() || h->Pending() >= kMaxPending) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_sent < interval * 9 / 10) return;
    Json b = {{"type", "BOOKMARK"},
              {"object",
               {{"kind", kind}, {"metadata", {{"resourceVersion", std::to_string(last_rv)}}}}}};
    last_sent = now;
    h->Write(b.dump() + "\n");
  }
};

}  // namespace

void ApiServer::WatchObjects(const HttpRequest& req, HttpResponse& res, const KindInfo& kind,
                             std::optional<LabelSelector> selector, const std::string& ns) {
  auto rv = ParseRevision(req.Param("resourceVersion"), "resourceVersion");
  if (!rv) return SendError(res, rv.error());
  int64_t from = *rv ? *rv : store_->CurrentRevision();
  auto watcher = store_->Watch(std::string(kind.kind), from);
  if (!watcher) return SendError(res, watcher.error());
  auto stream = std::make_shared<WatchStream>();
  stream->watcher = std::move(*watcher);
  stream->selector = std::move(selector);
  stream->ns = ns;
  stream->kind = std::string(kind.kind);
  stream->last_rv = from;
  auto interval = opts_.bookmark_interval;
  res.content_type = "application/x-ndjson";
  res.stream = [stream, interval, server = http_.get()](const std::shared_ptr<HttpStream>& http) {
    stream->http = http;
    // The stream owns the watch: it closes with the client, the server, or an error.
    http->OnClose([stream] { stream->watcher->Close(); });
    http->Every(std::chrono::duration_cast<std::chrono::milliseconds>(interval),
                [stream, interval] { stream->Bookmark(interval); });
    // Store events wake the loop; the notify runs under store locks, so it only posts.
    std::weak_ptr<WatchStream> weak = stream;
    auto scheduled = stream->scheduled;
    stream->watcher->SetNotify([server, weak, scheduled] {
      if (scheduled->exchange(true)) return;
      server->Post([weak, scheduled] {
        scheduled->store(false);
        if (auto s = weak.lock()) s->Drain();
      });
    });
    stream->Drain();
  };
}

}  // namespace mentat
