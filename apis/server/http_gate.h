// The per-connection state of HttpServer: what its input gate holds back from evhttp and why,
// the connection's deadline, and its place in the connection caps. Internal to the server's
// files (http_server.cc, http_gate.cc, http_connections.cc).
#pragma once

#include <optional>
#include <string>

#include <event2/buffer.h>
#include <event2/event.h>

#include "apis/server/http_server.h"

namespace mentat {

// Every connection's input passes the gate (an evbuffer callback, ahead of evhttp), one request
// at a time: the gate reads a request's head before evhttp sees any of it, decides where its
// body goes, and holds whatever follows until the request has been answered.
struct HttpServer::InputGate {
  enum class State {
    kHead,     // the next bytes are a request head: held until it is whole and judged
    kBody,     // `remaining` body bytes go on to evhttp (an ordinary request)
    kPassAll,  // a chunked body: everything goes on to evhttp, which frames it
    kSpool,    // a streamed body goes to the sink; evhttp gets the head once it is all in
    kDrain,    // a refused request's body: `remaining` bytes are read and dropped
    kSwallow,  // nothing more is taken from this connection: input is dropped until it closes
  };
  enum class Deadline { kNone, kHead, kBody, kLinger };
  // What the request that evhttp dispatches next on this connection carries.
  struct Upload {
    std::string method;
    std::string path;
    BodySinkPtr sink;
    uint64_t bytes = 0;
    std::optional<Error> error;
    bool close = false;  // its body was not read: the connection cannot go on
    // Refused from its head alone: this is the answer, sent without running a handler.
    std::optional<HttpResponse> refusal;
  };

  ~InputGate() {
    if (held) evbuffer_free(held);
    if (staged) evbuffer_free(staged);
    if (timer) event_free(timer);
  }

  HttpServer* server = nullptr;
  bufferevent* bev = nullptr;
  evbuffer_cb_entry* entry = nullptr;
  evhttp_connection* evcon = nullptr;  // known once admitted
  std::string peer;                    // the client's IP address
  bool admitted = false;               // counted in the caps: released when it closes
  State state = State::kHead;
  bool in_flight = false;    // evhttp has a request of this connection it has not answered yet
  evbuffer* held = nullptr;  // input not handed on yet (a head, or what follows a request)
  evbuffer* staged = nullptr;  // what the gate hands evhttp, on its way into the input buffer
  bool busy = false;         // inside the gate: its own changes to the buffer call it again
  std::string head;          // kSpool: the bodiless head evhttp gets once the body is in
  uint64_t remaining = 0;    // kBody, kSpool, kDrain: body bytes still to come
  Upload upload;             // kSpool: filled in as the body arrives
  std::optional<Upload> ready;
  event* timer = nullptr;
  Deadline deadline = Deadline::kNone;
};

}  // namespace mentat
