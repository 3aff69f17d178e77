// AgentRelay over real sockets on 127.0.0.1: an HTTP server playing a node's agent (it answers
// with the proof of the node's key, as runtimes/agent does) and the API's HttpServer relaying
// its answer to a client that reads slowly. The relayed body arrives whole and ends, also when
// the agent's side of the call is over long before the client has drained what was held for it.
#include "apis/server/agent_relay.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "apis/agent_key.h"

namespace mentat {
namespace {

using namespace std::chrono_literals;

constexpr char kKey[] = "node-key";

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    if (cond()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return cond();
}

// Decodes a chunked answer as it arrives: each read's bytes are parsed once, so reading stays
// linear in the body. (Decoding all that had arrived again after every read copied the body
// so far each time, hundreds of times over 14 MiB: on a loaded machine the reader itself then
// took longer than its deadline, with the rest of the body waiting in its socket.)
class ChunkedBody {
 public:
  void Feed(const char* data, size_t n) {
    pending_.append(data, n);
    size_t pos = 0;
    while (!ended_ && Step(pos)) {
    }
    pending_.erase(0, pos);
  }
  const std::string& body() const { return body_; }
  // The terminating chunk came.
  bool ended() const { return ended_; }

 private:
  // Parses what it can at `pos`; false when it needs more bytes.
  bool Step(size_t& pos) {
    switch (state_) {
      case State::kHead: {
        size_t end = pending_.find("\r\n\r\n", pos);
        if (end == std::string::npos) return false;
        pos = end + 4;
        state_ = State::kSize;
        return true;
      }
      case State::kSize: {
        size_t eol = pending_.find("\r\n", pos);
        if (eol == std::string::npos) return false;
        size_t n = std::stoul(pending_.substr(pos, eol - pos), nullptr, 16);
        pos = eol + 2;
        if (n == 0) {
          ended_ = true;
          return false;
        }
        left_ = n;
        state_ = State::kData;
        return true;
      }
      case State::kData: {
        size_t take = std::min(left_, pending_.size() - pos);
        body_.append(pending_, pos, take);
        pos += take;
        left_ -= take;
        if (left_ > 0) return false;
        state_ = State::kDataEnd;
        return true;
      }
      case State::kDataEnd:
        if (pending_.size() - pos < 2) return false;
        pos += 2;
        state_ = State::kSize;
        return true;
    }
    return false;
  }

  enum class State { kHead, kSize, kData, kDataEnd };
  State state_ = State::kHead;
  std::string pending_;  // bytes not parsed yet
  size_t left_ = 0;      // of the current chunk's data
  std::string body_;
  bool ended_ = false;
};

// What a client read of a chunked answer, and why it stopped reading before the body's end.
struct Received {
  ChunkedBody chunked;
  std::string stopped;  // "" when the body ended
};

class AgentRelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < kBody; ++i) body_.push_back(static_cast<char>('a' + (i * 7 + i / 4096) % 26));
    // The answer comes in two parts: all but its last bytes at once, the rest (and the end)
    // when the test lets it.
    agent_.Get("/big", [this](const httplib::Request& req, httplib::Response& res) {
      res.set_header(kAgentProofHeader,
                     AgentProof(kKey, req.get_header_value(kAgentChallengeHeader)));
      res.set_chunked_content_provider("text/plain", [this](size_t, httplib::DataSink& sink) {
        for (size_t at = 0; at < kFirst; at += 1 << 20)
          if (!sink.write(body_.data() + at, std::min<size_t>(1 << 20, kFirst - at))) return false;
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return released_; });
        lock.unlock();
        sink.write(body_.data() + kFirst, kBody - kFirst);
        sink.done();
        return true;
      });
    });
    agent_port_ = agent_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(agent_port_, 0);
    agent_thread_ = std::thread([this] { agent_.listen_after_bind(); });
    ASSERT_TRUE(WaitFor([this] { return agent_.is_running(); }, 5s));

    AgentRelayOptions ro;
    ro.max_ahead = kMaxAhead;
    relay_ = std::make_unique<AgentRelay>(ro);
    server_ = std::make_unique<HttpServer>(HttpServerOptions{});
    server_->Route("GET", "/logs", [this](const HttpRequest&, HttpResponse& res) {
      AgentEndpoint to;
      to.node = "node-a";
      to.host = to.ip = "127.0.0.1";
      to.port = agent_port_;
      to.key = kKey;
      relay_->Relay(to, "/big", {}, res.Defer());
    });
    auto port = server_->Start();
    ASSERT_TRUE(port) << port.error().message();
    port_ = *port;
  }
  void TearDown() override {
    Release();
    relay_->Stop();
    server_->Stop();
    agent_.stop();
    if (agent_thread_.joinable()) agent_thread_.join();
  }

  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

  // Waits until the server's loop has run everything posted to it so far.
  void LoopCaughtUp() {
    auto done = std::make_shared<std::atomic<bool>>(false);
    ASSERT_TRUE(server_->Post([done] { *done = true; }));
    ASSERT_TRUE(WaitFor([&] { return done->load(); }, 10s));
  }

  // A connection with a small receive buffer, so that little of the body fits in the kernel.
  int Connect() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 64 << 10;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port_));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    return fd;
  }

  // Reads until the chunked body ends, the server closes the connection, or `deadline` passes.
  static Received ReadAll(int fd, std::chrono::seconds deadline) {
    Received got;
    auto start = std::chrono::steady_clock::now();
    char buf[64 << 10];
    while (!got.chunked.ended()) {
      if (std::chrono::steady_clock::now() - start >= deadline) {
        got.stopped = "the client's deadline of " + std::to_string(deadline.count()) + " s passed";
        break;
      }
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - start);
        got.stopped = (n == 0 ? std::string("the server closed the connection")
                              : std::string("recv failed: ") + strerror(errno)) +
                      " after " + std::to_string(elapsed.count()) + " ms";
        break;
      }
      got.chunked.Feed(buf, static_cast<size_t>(n));
    }
    return got;
  }

  // The first part is more than the kernel's buffers (4 MiB of send buffer at most here) and
  // the relay's `max_ahead` take together, so the relay holds back what the client has not
  // taken; and less than they take with what the relay queues behind them, so the relay reads
  // the agent's whole first part meanwhile.
  static constexpr size_t kMaxAhead = 8 << 20;
  static constexpr size_t kFirst = 14 << 20;
  static constexpr size_t kBody = kFirst + 4096;
  std::string body_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
  httplib::Server agent_;
  int agent_port_ = 0;
  std::thread agent_thread_;
  std::unique_ptr<AgentRelay> relay_;
  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
};

TEST_F(AgentRelayTest, BodyHeldForASlowClientEndsAfterTheAgentsSideIsOver) {
  int fd = Connect();
  std::string req = "GET /logs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  ASSERT_EQ(send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  // The client reads nothing until the agent's side of the call is over. First the relay
  // takes in the agent's first part, and its client's loop has what was posted for it: the
  // relay now waits for the client to drain. Then the agent sends the rest and ends.
  ASSERT_TRUE(WaitFor([&] { return relay_->BytesRelayed() == kFirst; }, 30s))
      << "the relay took in " << relay_->BytesRelayed() << " of the agent's first " << kFirst
      << " bytes while its client read nothing";
  LoopCaughtUp();
  Release();
  ASSERT_TRUE(WaitFor([&] { return relay_->InProgress() == 0; }, 30s))
      << "the relay's call to the agent did not end while the client read nothing";
  Received got = ReadAll(fd, 30s);
  close(fd);
  const std::string& body = got.chunked.body();
  EXPECT_TRUE(got.chunked.ended()) << "the body did not end: " << body.size() << " of " << kBody
                                   << " bytes arrived, then " << got.stopped;
  EXPECT_EQ(body.size(), kBody);
  EXPECT_TRUE(body == body_) << "the bytes arrived changed or out of order";
}

}  // namespace
}  // namespace mentat
