// The server's calls to node agents, made for the API's logs and exec routes (agent_proxy.h).
// Each call runs on a thread of its own, so no handler worker waits on an agent. A GET's answer
// is relayed as it arrives (a log that follows, an exec session's output) and never runs more
// than a bounded number of bytes ahead of the client: past that the relay stops reading the
// agent, and TCP holds the agent back. A POST's answer (small JSON) is passed on whole.
//
// Every call carries the node's agent key and a fresh challenge; an answer without the agent's
// proof of the key (apis/agent_key.h) is refused, whatever listens at the address.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "apis/error.h"
#include "apis/server/http_server.h"

namespace mentat {

// Where a node's agent is reached, and with what.
struct AgentEndpoint {
  std::string node;
  bool https = false;
  std::string host;  // as the agent advertises itself: the name its certificate is checked for
  std::string ip;    // where the connection goes: the address the node's status writes came from
  int port = 0;
  std::string key;  // the node's agent key
  // For messages: "node-a's agent at 127.0.0.1:4700".
  std::string Describe() const;
};

struct AgentRelayOptions {
  std::string ca_file;         // verifies https agents' certificates; "" = the system's CAs
  size_t max_calls = 256;      // in progress at once; more are refused (503)
  // Bytes of a relayed body held for a slow client, at most; past that the agent is held back.
  size_t max_ahead = 1 << 20;
  std::chrono::seconds connect_timeout{5};
  // A relayed body silent this long ends (exec output sends a keep-alive every 15 s; a log
  // that follows is resumed by its client from the offsets it has).
  std::chrono::seconds read_timeout{60};
};

// How a relayed stream (a GET) is passed on.
struct RelayHooks {
  // Runs once the call to the agent is over, before the client is given the answer's end (or
  // the answer, when it is not a stream). `streamed`: the agent's 200 went out and its body
  // was relayed (to its end, or until the client or the agent went).
  std::function<void(bool streamed)> on_end;
  // When the agent is lost in the middle of a body: a last piece for the client (an exec
  // stream's JSON error line), or "" to end the body as it is.
  std::function<std::string(const Error&)> last_words;
};

class AgentRelay {
 public:
  explicit AgentRelay(AgentRelayOptions opts) : opts_(std::move(opts)) {}
  ~AgentRelay() { Stop(); }

  // GET `path` (with its query) from the agent, and answer `respond` with the agent's answer:
  // a 200's head (content type, X-Log-Start) and then its body as a stream, or the agent's
  // error. Any thread; returns at once.
  void Relay(const AgentEndpoint& to, const std::string& path, RelayHooks hooks,
             HttpResponder respond);
  // POST `body` to `path` and answer `respond` with the agent's answer; a 2xx body goes through
  // `rewrite` first (an error from it is the answer instead). Any thread; returns at once.
  using Rewrite = std::function<Result<std::string>(const std::string& body)>;
  void Forward(const AgentEndpoint& to, const std::string& path, std::string body,
               std::string content_type, Rewrite rewrite, HttpResponder respond);

  // Cancels every call in progress and waits for their threads. Later calls are refused.
  void Stop();
  size_t InProgress();
  // Bytes of agents' streamed answers taken in so far (each counted once it is queued for its
  // client, after the hand-off to the client's loop is posted).
  uint64_t BytesRelayed() const { return bytes_relayed_; }

  struct Call;  // one call's state, in agent_relay.cc

 private:
  // Admits `c` (false, having answered it, when stopping or full) and runs `body` on its thread.
  void Launch(std::shared_ptr<Call> c, std::function<void(Call&)> body);
  void RunGet(Call& c);
  void RunPost(Call& c);

  AgentRelayOptions opts_;
  std::mutex mu_;
  std::condition_variable idle_;
  std::set<std::shared_ptr<Call>> calls_;
  bool stopping_ = false;
  std::atomic<uint64_t> bytes_relayed_{0};
};

}  // namespace mentat
