// HttpServer's streamed bodies (StreamBody) over real sockets on 127.0.0.1: the body reaches the
// sink and never HttpRequest::body, on fresh and kept-alive connections, with heads that arrive
// in pieces and requests pipelined behind an upload; bodies over the limit or without a length
// are refused unread and close the connection; a client that leaves mid-body leaves nothing;
// and other routes keep their own, smaller limit.
#include "apis/server/http_server.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace mentat {
namespace {

using namespace std::chrono_literals;

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    if (cond()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return cond();
}

// Collects what it is given; counts the sinks alive.
struct CollectSink : BodySink {
  explicit CollectSink(std::atomic<int>* alive) : alive_(alive) { ++*alive_; }
  ~CollectSink() override { --*alive_; }
  Status Write(const char* data, size_t n) override {
    if (fail_after && got.size() + n > fail_after) return Internal("disk full");
    got.append(data, n);
    return {};
  }
  std::string got;
  size_t fail_after = 0;
  std::atomic<int>* alive_;
};

class StreamBodyTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kLimit = 1 << 20;

  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);
    HttpServerOptions o;
    o.workers = 2;
    o.max_body_bytes = 64 << 10;
    o.idle_timeout = std::chrono::seconds(5);
    server_ = std::make_unique<HttpServer>(o);
    server_->StreamBody("PUT", "/up/:name", kLimit,
                        [this](const HttpRequest& head) -> Result<BodySinkPtr> {
                          ++opened_;
                          if (head.Header("x-refuse") == "yes")
                            return MakeError(Code::kForbidden, "not you");
                          auto sink = std::make_shared<CollectSink>(&alive_);
                          if (head.matches[0] == "failing") sink->fail_after = 1000;
                          return BodySinkPtr(sink);
                        });
    server_->Route("PUT", "/up/:name", [](const HttpRequest& req, HttpResponse& res) {
      if (req.body_error) {
        res.status = req.body_error->HttpStatus();
        res.body = req.body_error->message();
        return;
      }
      auto sink = std::dynamic_pointer_cast<CollectSink>(req.sink);
      res.body = req.matches[0] + " sink=" + (sink ? std::to_string(sink->got.size()) : "none") +
                 " body=" + std::to_string(req.body.size()) +
                 " bytes=" + std::to_string(req.body_bytes);
      if (sink) res.body += " sum=" + std::to_string(Sum(sink->got));
    });
    server_->Route("PUT", "/plain/:name", [](const HttpRequest& req, HttpResponse& res) {
      res.body = "plain body=" + std::to_string(req.body.size());
    });
    server_->Route("GET", "/hello",
                   [](const HttpRequest&, HttpResponse& res) { res.body = "hello"; });
    auto port = server_->Start();
    ASSERT_TRUE(port) << port.error().message();
    port_ = *port;
  }
  void TearDown() override { server_->Stop(); }

  static uint64_t Sum(const std::string& s) {
    uint64_t sum = 0;
    for (unsigned char c : s) sum = sum * 31 + c;
    return sum;
  }
  static std::string Body(size_t n) {
    std::string b(n, '\0');
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<char>('a' + (i * 7919) % 26);
    return b;
  }

  int Connect() {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port_);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    return fd;
  }
  static bool Send(int fd, const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += n;
    }
    return true;
  }
  // Reads `count` whole responses (Content-Length framed), or until the server closes.
  static std::vector<std::string> Read(int fd, size_t count, bool* closed = nullptr) {
    std::string buf;
    std::vector<std::string> out;
    auto until = std::chrono::steady_clock::now() + 10s;
    bool eof = false;
    while (std::chrono::steady_clock::now() < until) {
      for (;;) {
        size_t end = buf.find("\r\n\r\n");
        if (end == std::string::npos) break;
        size_t cl = buf.find("Content-Length: ");
        size_t len = cl != std::string::npos && cl < end ? std::stoul(buf.substr(cl + 16)) : 0;
        if (buf.size() < end + 4 + len) break;
        out.push_back(buf.substr(0, end + 4 + len));
        buf.erase(0, end + 4 + len);
      }
      if (out.size() >= count && !closed) break;
      if (eof) break;
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      char chunk[65536];
      ssize_t n = read(fd, chunk, sizeof(chunk));
      if (n <= 0) {
        eof = true;
        continue;
      }
      buf.append(chunk, n);
    }
    if (closed) *closed = eof;
    return out;
  }
  static std::string Put(const std::string& path, const std::string& body,
                         const std::string& extra = "") {
    return "PUT " + path + " HTTP/1.1\r\nHost: x\r\n" + extra +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }

  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
  std::atomic<int> opened_{0};
  std::atomic<int> alive_{0};
};

TEST_F(StreamBodyTest, TheBodyGoesToTheSinkNotToMemory) {
  std::string body = Body(900 << 10);  // over the plain routes' 64 KiB, under the 1 MiB limit
  int fd = Connect();
  ASSERT_TRUE(Send(fd, Put("/up/a", body)));
  auto r = Read(fd, 1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_NE(r[0].find(" 200 "), std::string::npos) << r[0];
  EXPECT_NE(r[0].find("a sink=921600 body=0 bytes=921600 sum=" + std::to_string(Sum(body))),
            std::string::npos)
      << r[0];
  close(fd);
  EXPECT_TRUE(WaitFor([&] { return server_->InputGateCount() == 0; }, 5s))
      << "the gate of a closed connection stayed";
  EXPECT_TRUE(WaitFor([&] { return alive_ == 0; }, 5s));
}

TEST_F(StreamBodyTest, KeptAliveConnectionsMixUploadsAndOtherRequests) {
  std::string body = Body(300 << 10);
  int fd = Connect();
  ASSERT_TRUE(Send(fd, Put("/up/one", body)));
  auto r = Read(fd, 1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_NE(r[0].find("one sink=307200 body=0"), std::string::npos) << r[0];
  ASSERT_TRUE(Send(fd, Put("/plain/x", "small")));
  r = Read(fd, 1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_NE(r[0].find("plain body=5"), std::string::npos) << r[0];
  ASSERT_TRUE(Send(fd, Put("/up/two", body.substr(0, 1000))));
  r = Read(fd, 1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_NE(r[0].find("two sink=1000 body=0"), std::string::npos) << r[0];
  // An empty upload is an upload too.
  ASSERT_TRUE(Send(fd, Put("/up/empty", "")));
  r = Read(fd, 1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_NE(r[0].find("empty sink=0 body=0 bytes=0"), std::string::npos) << r[0];
  close(fd);
}

TEST_F(StreamBodyTest, AHeadThatArrivesInPiecesIsStillSeen) {
  std::string body = Body(200 << 10);
  std::string req = Put("/up/slow", body, "X-Long: " + std::string(3000, 'h') + "\r\n");
  int fd = Connect();
  size_t head = req.find("\r\n\r\n") + 4;
  // The head a few bytes at a time, paced so that the server reads it in many pieces.
  for (size_t off = 0; off < head; off += 700) {
    ASSERT_TRUE(Send(fd, req.substr(off, std::min<size_t>(700, head - off))));
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_TRUE(Send(fd, req.substr(head)));
  auto r = Read(fd, 1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_NE(r[0].find("slow sink=204800 body=0 bytes=204800 sum=" + std::to_string(Sum(body))),
            std::string::npos)
      << r[0];
  close(fd);
}

TEST_F(StreamBodyTest, RequestsPipelinedBehindAnUploadAreAnsweredInOrder) {
  std::string body = Body(100 << 10);
  int fd = Connect();
  ASSERT_TRUE(Send(
      fd, Put("/up/p", body) + "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" + Put("/plain/q", "abc")));
  auto r = Read(fd, 3);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_NE(r[0].find("p sink=102400 body=0"), std::string::npos) << r[0];
  EXPECT_NE(r[1].find("hello"), std::string::npos) << r[1];
  EXPECT_NE(r[2].find("plain body=3"), std::string::npos) << r[2];
  close(fd);
}

TEST_F(StreamBodyTest, OverTheLimitIsRefusedUnreadAndTheConnectionCloses) {
  int fd = Connect();
  // Only the head: the server answers without waiting for a body it will not take.
  ASSERT_TRUE(Send(fd,
                   "PUT /up/big HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                   "Content-Length: " +
                       std::to_string(kLimit + 1) + "\r\n\r\n"));
  bool closed = false;
  auto r = Read(fd, 1, &closed);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_NE(r[0].find(" 413 "), std::string::npos) << r[0];
  EXPECT_NE(r[0].find("over the limit of 1048576 bytes"), std::string::npos) << r[0];
  EXPECT_EQ(r[0].find("100 Continue"), std::string::npos) << r[0];
  EXPECT_TRUE(closed) << "the connection stayed open with an unread body on it";
  EXPECT_EQ(opened_, 0) << "a sink was opened for a refused body";
  close(fd);
  // Bytes after a refused head are never taken for a request.
  fd = Connect();
  ASSERT_TRUE(Send(
      fd, "PUT /up/big HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(kLimit + 100) +
              "\r\n\r\n" + "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  r = Read(fd, 2, &closed);
  ASSERT_EQ(r.size(), 1u) << r[1];
  EXPECT_NE(r[0].find(" 413 "), std::string::npos) << r[0];
  close(fd);
}

TEST_F(StreamBodyTest, UploadsNeedAContentLength) {
  int fd = Connect();
  ASSERT_TRUE(Send(fd,
                   "PUT /up/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5\r\nhello\r\n0\r\n\r\n"));
  bool closed = false;
  auto r = Read(fd, 1, &closed);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_NE(r[0].find(" 400 "), std::string::npos) << r[0];
  EXPECT_NE(r[0].find("Content-Length"), std::string::npos) << r[0];
  EXPECT_TRUE(closed);
  close(fd);
}

TEST_F(StreamBodyTest, ASinkErrorIsAnsweredAfterTheBodyAndTheConnectionGoesOn) {
  int fd = Connect();
  ASSERT_TRUE(Send(fd, Put("/up/x", Body(5000), "X-Refuse: yes\r\n")));
  auto r = Read(fd, 1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_NE(r[0].find(" 403 "), std::string::npos) << r[0];
  ASSERT_TRUE(Send(fd, Put("/up/failing", Body(5000))));
  r = Read(fd, 1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_NE(r[0].find(" 500 "), std::string::npos) << r[0];
  EXPECT_NE(r[0].find("disk full"), std::string::npos) << r[0];
  ASSERT_TRUE(Send(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  r = Read(fd, 1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_NE(r[0].find("hello"), std::string::npos) << r[0];
  close(fd);
  EXPECT_TRUE(WaitFor([&] { return alive_ == 0; }, 5s));
}

TEST_F(StreamBodyTest, AClientThatLeavesMidBodyLeavesNothing) {
  int fd = Connect();
  std::string req = Put("/up/gone", Body(500 << 10));
  ASSERT_TRUE(Send(fd, req.substr(0, req.size() / 2)));
  ASSERT_TRUE(WaitFor([&] { return alive_ == 1; }, 5s)) << "the upload never started";
  close(fd);
  EXPECT_TRUE(WaitFor([&] { return alive_ == 0 && server_->InputGateCount() == 0; }, 5s))
      << "an abandoned upload's sink or gate stayed";
}

TEST_F(StreamBodyTest, OtherRoutesKeepTheirOwnLimit) {
  int fd = Connect();
  ASSERT_TRUE(Send(fd, Put("/plain/big", Body(100 << 10))));
  auto r = Read(fd, 1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_NE(r[0].find(" 413 "), std::string::npos) << r[0];
  close(fd);
  EXPECT_EQ(opened_, 0);
}

}  // namespace
}  // namespace mentat
