// Watch streams through the real server, at the edges: a quiet stream outlives the idle
// timeout (bookmarks keep it honest), a stuck client neither blocks writers nor grows the
// server's memory and is let go, and a slow client that fell behind is told why (410).
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A watch request on a plain socket, so the test decides when (and whether) to read.
int OpenWatch(int port, const std::string& path, int rcvbuf = 0) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (rcvbuf) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return -1;
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) return -1;
  return fd;
}

// Reads what arrives within `wait`; false once the server ended the stream (the last chunk of
// the chunked response, or a closed connection).
bool ReadSome(int fd, std::string* out, std::chrono::milliseconds wait) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(wait.count())) <= 0) return true;
  char buf[65536];
  ssize_t n = read(fd, buf, sizeof(buf));
  if (n <= 0) return false;
  out->append(buf, n);
  return !(out->size() >= 5 && out->compare(out->size() - 5, 5, "0\r\n\r\n") == 0);
}

// The TCP state, as the server's side of this client's connection sees it (/proc/net/tcp):
// "01" established, "04" FIN-WAIT-1 (the server closed), "" gone.
std::string ServerSideState(int client_fd, int server_port) {
  sockaddr_in local{};
  socklen_t len = sizeof(local);
  getsockname(client_fd, reinterpret_cast<sockaddr*>(&local), &len);
  char want_local[16], want_remote[16];
  snprintf(want_local, sizeof(want_local), ":%04X", server_port);
  snprintf(want_remote, sizeof(want_remote), ":%04X", ntohs(local.sin_port));
  std::ifstream in("/proc/net/tcp");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string slot, l, r, st;
    f >> slot >> l >> r >> st;
    if (l.size() > 5 && r.size() > 5 && l.substr(l.size() - 5) == want_local &&
        r.substr(r.size() - 5) == want_remote) {
      return st;
    }
  }
  return "";
}

int Count(const std::string& hay, const std::string& needle) {
  int n = 0;
  for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) ++n;
  return n;
}

std::string Profile(const std::string& name, size_t pad = 0) {
  return R"({"kind":"SecurityProfile","metadata":{"name":")" + name +
         R"(","annotations":{"pad":")" + std::string(pad, 'x') +
         R"("}},"spec":{"driver":"exec","isolation":"low"}})";
}

TEST(WatchStreams, QuietStreamOutlivesTheIdleTimeoutOnBookmarks) {
  std::string dir = TempDir("watch-quiet");
  int port = FreePort();
  auto server = StartServer(port, dir + "/data", dir + "/server.log",
                            {"--idle-timeout", "1", "--bookmark-interval", "1"});
  ASSERT_TRUE(server);
  int fd = OpenWatch(port, "/v1/services?watch=true");
  ASSERT_GE(fd, 0);
  std::string got;
  bool open = true;
  // Four idle timeouts pass; the stream stays open and bookmarks keep arriving.
  auto until = Clock::now() + 4s;
  while (open && Clock::now() < until) open = ReadSome(fd, &got, 100ms);
  EXPECT_TRUE(open) << "the server closed a healthy, quiet watch stream:\n" << got;
  EXPECT_GE(Count(got, "\"BOOKMARK\""), 2) << got;
  close(fd);
}

TEST(WatchStreams, StuckClientBlocksNoWriterGrowsNoMemoryAndIsLetGo) {
  std::string dir = TempDir("watch-stuck");
  int port = FreePort();
  auto server = StartServer(port, dir + "/data", dir + "/server.log", {"--idle-timeout", "2"});
  ASSERT_TRUE(server);
  long rss_before = RssKb(server->pid());
  // This client never reads, with a small receive buffer so the server sees it at once.
  int stuck = OpenWatch(port, "/v1/securityprofiles?watch=true", 4096);
  ASSERT_GE(stuck, 0);
  ASSERT_EQ(ServerSideState(stuck, port), "01") << "the watch connection is not established";
  httplib::Client cli("127.0.0.1", port);
  cli.set_tcp_nodelay(true);
  double worst_ms = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string name = "stuck-" + std::to_string(i);
    auto t0 = Clock::now();
    auto res = cli.Put("/v1/securityprofiles/" + name, Profile(name, 2000), "application/json");
    ASSERT_TRUE(res && res->status == 201) << (res ? res->body : "no response");
    worst_ms = std::max(worst_ms, std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  long rss_after = RssKb(server->pid());
  std::cout << "3000 writes past a stuck watcher: slowest " << worst_ms << " ms; server RSS "
            << rss_before / 1024 << " -> " << rss_after / 1024 << " MB\n";
  EXPECT_LT(worst_ms, 1000) << "a stuck watcher held up a writer";
  // 3000 events of 2 KiB were published; the stuck stream buffers at most ~1 MiB of them.
  EXPECT_LT(rss_after - rss_before, 64 * 1024);
  // With its output unread past the idle timeout, the server drops the connection: its side
  // leaves ESTABLISHED (the client, which reads nothing, cannot see a FIN queued behind data).
  ASSERT_TRUE(WaitFor([&] { return ServerSideState(stuck, port) != "01"; }, 30s))
      << "the server kept a stuck client's connection open";
  close(stuck);
}

TEST(WatchStreams, SlowClientThatFellBehindIsToldGone) {
  std::string dir = TempDir("watch-slow");
  int port = FreePort();
  auto server = StartServer(port, dir + "/data", dir + "/server.log", {"--idle-timeout", "600"});
  ASSERT_TRUE(server);
  int slow = OpenWatch(port, "/v1/securityprofiles?watch=true", 4096);
  ASSERT_GE(slow, 0);
  // More events than a watcher may hold (10,000) beyond what the sockets and the server's
  // 1 MiB per-stream buffer take (~5 MB: 3 KiB events), while the client reads nothing.
  httplib::Client cli("127.0.0.1", port);
  cli.set_tcp_nodelay(true);
  constexpr int kWrites = 12000;
  for (int i = 0; i < kWrites; ++i) {
    std::string name = "slow-" + std::to_string(i);
    auto res = cli.Put("/v1/securityprofiles/" + name, Profile(name, 3000), "application/json");
    ASSERT_TRUE(res && res->status == 201) << (res ? res->body : "no response");
  }
  // Now it reads: what was buffered, then an ERROR event that says why, then the end.
  std::string got;
  bool open = true;
  ASSERT_TRUE(WaitFor([&] {
    open = ReadSome(slow, &got, 50ms);
    return !open;
  }, 30s)) << "the stream did not end";
  auto err = got.rfind("\"type\":\"ERROR\"");
  ASSERT_NE(err, std::string::npos) << "no ERROR event at the end";
  std::string tail = got.substr(got.rfind('\n', err) + 1);
  EXPECT_NE(tail.find("\"code\":410"), std::string::npos) << tail;
  EXPECT_NE(tail.find("re-list"), std::string::npos) << tail;
  // Events arrived in order before it, and fewer than all of them.
  int delivered = Count(got, "\"type\":\"ADDED\"");
  EXPECT_GT(delivered, 0);
  EXPECT_LT(delivered, kWrites);
  close(slow);
}

}  // namespace
}  // namespace mentat::e2e
