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

#include <chrono>
#include <condition_variable>
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

// The decoded body of a chunked answer, and whether its terminating chunk came.
struct Dechunked {
  std::string body;
  bool ended = false;
};

Dechunked Dechunk(const std::string& raw) {
  Dechunked out;
  size_t pos = raw.find("\r\n\r\n");
  if (pos == std::string::npos) return out;
  pos += 4;
  while (true) {
    size_t eol = raw.find("\r\n", pos);
    if (eol == std::string::npos) return out;
    size_t n = std::stoul(raw.substr(pos, eol - pos), nullptr, 16);
    if (n == 0) {
      out.ended = true;
      return out;
    }
    if (raw.size() < eol + 2 + n) return out;
    out.body.append(raw, eol + 2, n);
    pos = eol + 2 + n + 2;
  }
}

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

  // Reads until the chunked body ends or `deadline` passes.
  static std::string ReadAll(int fd, std::chrono::seconds deadline) {
    std::string raw;
    auto until = std::chrono::steady_clock::now() + deadline;
    char buf[64 << 10];
    while (std::chrono::steady_clock::now() < until && !Dechunk(raw).ended) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      raw.append(buf, static_cast<size_t>(n));
    }
    return raw;
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
  Dechunked got = Dechunk(ReadAll(fd, 30s));
  close(fd);
  EXPECT_TRUE(got.ended) << "the body did not end: " << got.body.size() << " of " << kBody
                         << " bytes arrived";
  EXPECT_EQ(got.body.size(), kBody);
  EXPECT_TRUE(got.body == body_) << "the bytes arrived changed or out of order";
}

}  // namespace
}  // namespace mentat
