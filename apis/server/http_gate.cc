// HttpServer's input gate (http_gate.h): each request's head is read and judged before evhttp
// sees it, so a body is read only once the request may have it, and never into memory when
// its route streams it (StreamBody).
#include <algorithm>

#include <event2/bufferevent.h>
#include <event2/http.h>

#include "apis/server/http_gate.h"
#include "apis/server/http_head.h"

namespace mentat {
namespace {

using Gate = HttpServer::InputGate;
using State = Gate::State;

// The request line of a head the gate could not parse: evhttp gets this one to answer.
constexpr char kUnparsedLine[] = "GET / HTTP/1.1";

HttpRequest ToRequest(const RequestHead& head) {
  HttpRequest r;
  r.method = head.method;
  r.path = head.path;
  r.params = head.params;
  r.headers = head.headers;
  return r;
}

}  // namespace

void HttpServer::OnInput(evbuffer* in, const evbuffer_cb_info* info, void* arg) {
  auto* g = static_cast<InputGate*>(arg);
  if (g->busy || info->n_added == 0) return;
  g->busy = true;
  // The new bytes join what the gate holds. Older bytes still in `in` are evhttp's: the part
  // of the current body it has not taken yet.
  size_t older = evbuffer_get_length(in) - info->n_added;
  if (older == 0) {
    evbuffer_add_buffer(g->held, in);
  } else {
    evbuffer* evhttps = evbuffer_new();
    evbuffer_remove_buffer(in, evhttps, older);
    evbuffer_add_buffer(g->held, in);
    evbuffer_add_buffer(in, evhttps);
    evbuffer_free(evhttps);
  }
  g->server->Pump(*g, g->staged);
  evbuffer_add_buffer(in, g->staged);  // inside the read: the end of `in` takes bytes
  g->busy = false;
}

void HttpServer::Pump(InputGate& g, evbuffer* to_evhttp) {
  for (;;) {
    size_t avail = evbuffer_get_length(g.held);
    if (avail == 0) return;
    switch (g.state) {
      case State::kHead:
        if (g.in_flight) return HoldWhileAnswering(g);
        if (!TakeHead(g, to_evhttp)) return;
        break;
      case State::kBody:
      case State::kDrain: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(avail, g.remaining));
        if (g.state == State::kBody) {
          evbuffer_remove_buffer(g.held, to_evhttp, n);
        } else {
          evbuffer_drain(g.held, n);
        }
        g.remaining -= n;
        if (g.remaining == 0) EndBody(g);
        break;
      }
      case State::kSpool:
        Spool(g, to_evhttp);
        break;
      case State::kPassAll:
        evbuffer_add_buffer(to_evhttp, g.held);
        return;
      case State::kSwallow:
        evbuffer_drain(g.held, avail);
        return;
    }
  }
}

void HttpServer::HoldWhileAnswering(InputGate& g) {
  // A client may send its next request before the answer to this one (pipelining); a little
  // of it waits here. Much more, while an answer streams on, is not a client to serve.
  if (evbuffer_get_length(g.held) <= opts_.max_header_bytes) return;
  g.state = State::kSwallow;
  evbuffer_drain(g.held, evbuffer_get_length(g.held));
}

void HttpServer::EndBody(InputGate& g) {
  g.state = State::kHead;
  ClearDeadline(g);
}

bool HttpServer::TakeHead(InputGate& g, evbuffer* to_evhttp) {
  size_t avail = evbuffer_get_length(g.held);
  evbuffer_ptr end = evbuffer_search(g.held, "\r\n\r\n", 4, nullptr);
  size_t head_len = end.pos < 0 ? avail : static_cast<size_t>(end.pos) + 4;
  if (head_len > opts_.max_header_bytes) {
    RefuseHead(g, to_evhttp, nullptr,
               ErrorResponse(431, "the request head is over " +
                                      std::to_string(opts_.max_header_bytes) + " bytes"));
    return true;
  }
  if (end.pos < 0) {
    // Not all of the head yet: evhttp must not start on it before the gate has judged it.
    if (g.deadline == InputGate::Deadline::kNone) SetHeadDeadline(g);
    return false;
  }
  std::string text(head_len, '\0');
  evbuffer_remove(g.held, text.data(), head_len);
  ClearDeadline(g);
  auto head = ParseHead(text);
  if (!head) {
    RefuseHead(g, to_evhttp, nullptr, ErrorResponse(400, head.error().message()));
    return true;
  }
  HttpRequest request = ToRequest(*head);
  // The route owner's check (authentication) comes first: a refused request's body is not read.
  if (head_check_) {
    if (auto refusal = head_check_(request, g.peer)) {
      RefuseHead(g, to_evhttp, &*head, std::move(*refusal));
      return true;
    }
  }
  if (const StreamedRoute* route = MatchStreamed(request)) {
    StartUpload(g, to_evhttp, *head, std::move(request), *route);
    return true;
  }
  if (head->content_length > opts_.max_body_bytes) {
    RefuseHead(g, to_evhttp, &*head, ErrorResponse(413, BodyTooLarge(head->content_length,
                                                               opts_.max_body_bytes)));
    return true;
  }
  PassRequest(g, to_evhttp, *head, text);
  return true;
}

void HttpServer::PassRequest(InputGate& g, evbuffer* to_evhttp, const RequestHead& head,
                             const std::string& text) {
  evbuffer_add(to_evhttp, text.data(), text.size());
  g.in_flight = true;
  if (head.chunked) {
    g.state = State::kPassAll;
    SetBodyDeadline(g, opts_.max_body_bytes);
  } else if (head.content_length > 0) {
    g.state = State::kBody;
    g.remaining = head.content_length;
    SetBodyDeadline(g, head.content_length);
  }
}

void HttpServer::RefuseHead(InputGate& g, evbuffer* to_evhttp, const RequestHead* head,
                            HttpResponse refusal) {
  InputGate::Upload up;
  up.method = head ? head->method : "GET";
  up.path = head ? head->path : "/";
  up.refusal = std::move(refusal);
  g.ready = std::move(up);
  g.in_flight = true;
  std::string bodiless = head ? head->Bodiless(/*keep_open=*/true)
                              : std::string(kUnparsedLine) + "\r\nContent-Length: 0\r\n\r\n";
  evbuffer_add(to_evhttp, bodiless.data(), bodiless.size());
  // A body of up to 4x the ordinary limit is read and dropped, and the connection goes on: a
  // client that sends all of its body before it reads gets the answer. One longer (or of unknown
  // length) is not read: the connection closes after the answer.
  if (head && !head->chunked && head->content_length <= 4 * opts_.max_body_bytes) {
    g.remaining = head->content_length;
    g.state = g.remaining > 0 ? State::kDrain : State::kHead;
    if (g.remaining > 0) SetBodyDeadline(g, g.remaining);
    return;
  }
  g.state = State::kSwallow;
}

const HttpServer::StreamedRoute* HttpServer::MatchStreamed(HttpRequest& r) const {
  auto segments = PathSegments(r.path);
  for (const auto& s : streamed_) {
    if (s.method != r.method || s.segments.size() != segments.size()) continue;
    std::vector<std::string> matches;
    bool ok = true;
    for (size_t i = 0; i < segments.size() && ok; ++i) {
      if (!s.segments[i].empty() && s.segments[i][0] == ':') {
        matches.push_back(segments[i]);
      } else {
        ok = s.segments[i] == segments[i];
      }
    }
    if (!ok) continue;
    r.matches = std::move(matches);
    return &s;
  }
  return nullptr;
}

void HttpServer::StartUpload(InputGate& g, evbuffer* to_evhttp, const RequestHead& head,
                             HttpRequest request, const StreamedRoute& route) {
  InputGate::Upload up;
  up.method = head.method;
  up.path = head.path;
  up.bytes = head.content_length;
  g.in_flight = true;
  if (auto refused = UploadRefusal(head, route)) {
    // The body is not read, so the connection cannot go on: the answer closes it, and all that
    // arrives until then is dropped (never taken for a next request).
    up.error = std::move(refused);
    up.close = true;
    g.ready = std::move(up);
    g.state = State::kSwallow;
    std::string bodiless = head.Bodiless(/*keep_open=*/false);
    evbuffer_add(to_evhttp, bodiless.data(), bodiless.size());
    return;
  }
  auto sink = route.open(request);
  if (sink) {
    up.sink = std::move(*sink);
  } else {
    up.error = sink.error();  // answered once the body has been read and dropped
  }
  g.upload = std::move(up);
  g.head = head.Bodiless(/*keep_open=*/false);
  g.remaining = head.content_length;
  g.state = State::kSpool;
  SetBodyDeadline(g, head.content_length);
  Spool(g, to_evhttp);
}

std::optional<Error> HttpServer::UploadRefusal(const RequestHead& head,
                                               const StreamedRoute& route) {
  if (head.chunked) {
    return Error(Code::kInvalidArgument,
                 "send the body with a Content-Length: uploads take no Transfer-Encoding");
  }
  if (!head.headers.count("content-length")) {
    return Error(Code::kInvalidArgument, "an upload needs a Content-Length header");
  }
  if (head.content_length > route.max_body_bytes) {
    return Error(Code::kTooLarge, BodyTooLarge(head.content_length, route.max_body_bytes));
  }
  return std::nullopt;
}

void HttpServer::Spool(InputGate& g, evbuffer* to_evhttp) {
  while (g.remaining > 0 && evbuffer_get_length(g.held) > 0) {
    evbuffer_iovec v;
    if (evbuffer_peek(g.held, -1, nullptr, &v, 1) < 1) break;
    size_t n = static_cast<size_t>(std::min<uint64_t>(v.iov_len, g.remaining));
    if (g.upload.sink) {
      if (auto st = g.upload.sink->Write(static_cast<const char*>(v.iov_base), n); !st) {
        g.upload.error = st.error();
        g.upload.sink.reset();  // the rest is read and dropped
      }
    }
    evbuffer_drain(g.held, n);
    g.remaining -= n;
  }
  if (g.remaining > 0) return;
  // All of the body is to_evhttp: evhttp gets the head now.
  g.ready = std::move(g.upload);
  g.upload = InputGate::Upload();
  EndBody(g);
  evbuffer_add(to_evhttp, g.head.data(), g.head.size());
  g.head.clear();
}

void HttpServer::OnRequestComplete(evhttp_request* req, void* arg) {
  auto* self = static_cast<HttpServer*>(arg);
  InputGate* g = self->GateOf(req);
  if (!g) return;
  g->in_flight = false;
  evbuffer* in = bufferevent_get_input(g->bev);
  // After a chunked body, bytes evhttp has not taken yet stay its own (as they were sent).
  if (g->state == State::kPassAll && evbuffer_get_length(in) == 0) g->state = State::kHead;
  if (g->state == State::kSwallow) return self->SetLingerDeadline(*g);
  if (g->state == State::kPassAll) return;  // what follows waits for the next read
  // Outside a read the bufferevent keeps the end of `in` frozen; it is empty here, so the
  // next request goes in at its front.
  g->busy = true;
  self->Pump(*g, g->staged);
  evbuffer_prepend_buffer(in, g->staged);
  g->busy = false;
}

}  // namespace mentat
