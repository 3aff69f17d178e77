// The HTTP front end under hostile input, against the real server: garbage instead of HTTP,
// an oversized header, bodies over the limit (ours, and far over it), a malformed query, an
// unknown method, and a client that sends half a request and stalls. Each gets a clear answer
// or a closed connection; none crashes or wedges the server, which keeps serving.
#include <netinet/in.h>
#include <signal.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return -1;
  return fd;
}

// Sends raw bytes and reads the answer until the server closes or `wait` passes.
std::string Raw(int port, const std::string& bytes, std::chrono::milliseconds wait = 3000ms) {
  int fd = Connect(port);
  if (fd < 0) return "";
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += n;
  }
  std::string out;
  auto until = std::chrono::steady_clock::now() + wait;
  char buf[8192];
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, n);
  }
  close(fd);
  return out;
}

class HttpEdge : public ::testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);  // the server may close on us mid-upload; that is the point
    dir_ = TempDir("http-edge");
    port_ = FreePort();
    server_ = StartServer(port_, dir_ + "/data", dir_ + "/server.log", {"--idle-timeout", "2"});
    ASSERT_TRUE(server_);
  }
  void TearDown() override {
    // Whatever came before, the server still answers, and still writes.
    EXPECT_TRUE(server_->Running()) << ReadFile(dir_ + "/server.log");
    EXPECT_EQ(HttpGet(port_, "/healthz").first, 200);
    httplib::Client cli("127.0.0.1", port_);
    auto r = cli.Put("/v1/services/after", "name: after\ndriver: exec\ncommand: /bin/true\n", "application/yaml");
    EXPECT_TRUE(r && r->status == 201);
  }
  std::string dir_;
  int port_ = 0;
  std::unique_ptr<Process> server_;
};

TEST_F(HttpEdge, ANamespaceThatIsNotADnsLabelIsRefusedOnEveryRoute) {
  // The body names no namespace; ?namespace= did, and was stored as given (a path, a newline,
  // a NUL, 5,000 characters). Now each is a 400 naming the field, and nothing is stored.
  httplib::Client cli("127.0.0.1", port_);
  const std::string body = "name: nsx\ndriver: exec\ncommand: /bin/true\n";
  const std::vector<std::string> hostile = {"..%2F..%2Fx", "a%2Fb", "a%0Ab%00c",
                                            std::string(5000, 'n'), "UPPER"};
  for (const std::string& ns : hostile) {
    auto put = cli.Put("/v1/services/nsx?namespace=" + ns, body, "application/yaml");
    ASSERT_TRUE(put);
    EXPECT_EQ(put->status, 400) << ns.substr(0, 40) << ": " << put->body;
    auto err = Json::parse(put->body, nullptr, false);
    ASSERT_TRUE(err.is_object()) << put->body;
    EXPECT_EQ(err["details"][0].value("field", ""), "namespace") << put->body;
    for (const char* path : {"/v1/services?namespace=", "/v1/services/nsx?namespace=",
                             "/v1/allocations?watch=true&namespace="}) {
      auto get = cli.Get(std::string(path) + ns);
      ASSERT_TRUE(get);
      EXPECT_EQ(get->status, 400) << path << ns.substr(0, 40);
    }
    auto apply = cli.Post("/v1/apply?namespace=" + ns, body, "application/yaml");
    ASSERT_TRUE(apply);
    EXPECT_EQ(apply->status, 400) << apply->body;
  }
  auto all = cli.Get("/v1/services");
  ASSERT_TRUE(all);
  EXPECT_EQ(Json::parse(all->body)["items"].size(), 0u) << all->body;
}

TEST_F(HttpEdge, GarbageAndOversizedHeadersAreRefused) {
  std::string garbage = Raw(port_, std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n", 40));
  EXPECT_TRUE(garbage.empty() || garbage.find(" 400 ") != std::string::npos) << garbage;
  std::string big_header = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(200 << 10, 'a') + "\r\n\r\n";
  std::string r = Raw(port_, big_header);
  EXPECT_EQ(r.find(" 200 "), std::string::npos) << "a 200 KiB header was accepted";
  std::string bad_method = Raw(port_, "BREW /v1/services HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(bad_method.find(" 200 "), std::string::npos) << bad_method;
}

TEST_F(HttpEdge, BodiesOverTheLimitGetA413NotACrash) {
  httplib::Client cli("127.0.0.1", port_);
  cli.set_read_timeout(10, 0);
  cli.set_write_timeout(10, 0);
  // Over our 8 MiB limit: the JSON error body, naming the limit.
  auto over = cli.Put("/v1/services/big", std::string(9 << 20, 'x'), "application/yaml");
  ASSERT_TRUE(over);
  EXPECT_EQ(over->status, 413);
  auto body = Json::parse(over->body, nullptr, false);
  EXPECT_EQ(body.value("reason", ""), "RequestEntityTooLarge") << over->body.substr(0, 200);
  // Far over it: refused without reading it all (a 413 or a closed connection).
  auto far = cli.Put("/v1/services/huge", std::string(40 << 20, 'x'), "application/yaml");
  EXPECT_TRUE(!far || far->status == 413) << far->status;
  EXPECT_EQ(HttpGet(port_, "/v1/services/big").first, 404);
}

TEST_F(HttpEdge, MalformedQueryAndHalfRequestsAreHandled) {
  std::string q = Raw(port_, "GET /v1/services?labelSelector=%ZZ&&& HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_NE(q.find("HTTP/1.1 400"), std::string::npos) << q;
  EXPECT_NE(q.find("\"code\":400"), std::string::npos) << q;
  // Half a request, then silence: the connection is closed after the idle timeout (2 s), and
  // meanwhile everyone else is served.
  int fd = Connect(port_);
  ASSERT_GE(fd, 0);
  std::string half = "PUT /v1/services/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nname: x";
  ASSERT_EQ(send(fd, half.data(), half.size(), MSG_NOSIGNAL), static_cast<ssize_t>(half.size()));
  EXPECT_EQ(HttpGet(port_, "/healthz").first, 200);
  // Readable means the server ended it: an error answer or end-of-file.
  auto sent = std::chrono::steady_clock::now();
  EXPECT_TRUE(WaitFor([&] {
    pollfd p{fd, POLLIN | POLLRDHUP, 0};
    return poll(&p, 1, 0) > 0;
  }, 10s)) << "a stalled half request was never closed";
  EXPECT_GE(std::chrono::steady_clock::now() - sent, 1500ms) << "closed before the idle timeout";
  close(fd);
  EXPECT_EQ(HttpGet(port_, "/v1/services/x").first, 404);
}

}  // namespace
}  // namespace mentat::e2e
