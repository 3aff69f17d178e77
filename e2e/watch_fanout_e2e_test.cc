// Watch fan-out through the real server: 1,000 concurrent watch streams on one mentat-server,
// every write delivered to all of them, with the delivery latency and the server's memory
// growth measured. The streams are plain sockets on one epoll in this process, so the client
// side costs no thread per stream either.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Stream {
  int fd = -1;
  bool headers = false;   // the 200 status line has arrived
  int next = 0;           // index of the next write this stream must see
  std::string tail;       // unmatched bytes carried between reads
};

TEST(WatchFanout, ThousandStreamsEachGetEveryWriteQuickly) {
  constexpr int kStreams = 1000;
  constexpr int kWrites = 40;
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  ASSERT_GE(rl.rlim_cur, static_cast<rlim_t>(kStreams + 100)) << "RLIMIT_NOFILE too low";

  std::string dir = TempDir("fanout");
  int port = FreePort();
  // Every stream comes from this one address: over the default cap per client.
  auto server = StartServer(port, dir + "/data", dir + "/server.log",
                            {"--max-connections-per-client", std::to_string(kStreams + 100)});
  ASSERT_TRUE(server);
  long rss_before = RssKb(server->pid());

  int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<Stream> streams(kStreams);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const std::string request =
      "GET /v1/securityprofiles?watch=true HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  for (int i = 0; i < kStreams; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << strerror(errno);
    ASSERT_EQ(write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = i;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    streams[i].fd = fd;
  }

  std::vector<Clock::time_point> written(kWrites);
  std::vector<double> latencies_ms;
  latencies_ms.reserve(kStreams * kWrites);
  int streams_with_headers = 0;
  int closed = 0;
  // Reads whatever is ready; returns false when a stream closed.
  auto pump = [&](std::chrono::milliseconds wait) {
    epoll_event events[256];
    int n = epoll_wait(ep, events, 256, static_cast<int>(wait.count()));
    auto now = Clock::now();
    char buf[65536];
    for (int e = 0; e < n; ++e) {
      Stream& s = streams[events[e].data.u32];
      for (;;) {
        ssize_t r = read(s.fd, buf, sizeof(buf));
        if (r == 0) {
          ++closed;
          epoll_ctl(ep, EPOLL_CTL_DEL, s.fd, nullptr);
          break;
        }
        if (r < 0) break;
        s.tail.append(buf, r);
        if (!s.headers && s.tail.find("HTTP/1.1 200") != std::string::npos) {
          s.headers = true;
          ++streams_with_headers;
        }
        for (;;) {
          std::string marker = "\"name\":\"fan-" + std::to_string(s.next) + "\"";
          auto at = s.tail.find(marker);
          if (at == std::string::npos) break;
          latencies_ms.push_back(
              std::chrono::duration<double, std::milli>(now - written[s.next]).count());
          s.tail.erase(0, at + marker.size());
          ++s.next;
        }
        if (s.tail.size() > 4096) s.tail.erase(0, s.tail.size() - 256);
      }
    }
  };
  auto deadline = Clock::now() + 30s;
  while (streams_with_headers < kStreams && Clock::now() < deadline) pump(100ms);
  ASSERT_EQ(streams_with_headers, kStreams) << "not every watch stream was answered";

  httplib::Client cli("127.0.0.1", port);
  cli.set_tcp_nodelay(true);
  for (int w = 0; w < kWrites; ++w) {
    std::string name = "fan-" + std::to_string(w);
    std::string body = R"({"kind":"SecurityProfile","metadata":{"name":")" + name +
                       R"("},"spec":{"driver":"exec","isolation":"low"}})";
    written[w] = Clock::now();
    auto res = cli.Put("/v1/securityprofiles/" + name, body, "application/json");
    ASSERT_TRUE(res && res->status == 201) << (res ? res->body : "no response");
    // Every stream must see this write before the next one is made.
    auto until = Clock::now() + 10s;
    auto all_seen = [&] {
      return std::all_of(streams.begin(), streams.end(), [&](const Stream& s) { return s.next > w; });
    };
    while (!all_seen() && Clock::now() < until && closed == 0) pump(50ms);
    ASSERT_EQ(closed, 0) << "a watch stream was closed by the server";
    ASSERT_TRUE(all_seen()) << "write " << w << " did not reach every stream within 10 s";
  }
  long rss_after = RssKb(server->pid());

  std::sort(latencies_ms.begin(), latencies_ms.end());
  ASSERT_EQ(latencies_ms.size(), static_cast<size_t>(kStreams * kWrites));
  double p50 = latencies_ms[latencies_ms.size() / 2];
  double p99 = latencies_ms[latencies_ms.size() * 99 / 100];
  double max = latencies_ms.back();
  std::cout << kStreams << " watch streams x " << kWrites << " writes: delivery p50 " << p50
            << " ms, p99 " << p99 << " ms, max " << max << " ms; server RSS " << rss_before / 1024
            << " MB -> " << rss_after / 1024 << " MB\n";
  EXPECT_LT(p99, 100.0);
  EXPECT_LT(rss_after - rss_before, 200 * 1024) << "server memory grew by over 200 MB";
  // The streams hold no server threads: the server's thread count stays small.
  std::string status = ReadFile("/proc/" + std::to_string(server->pid()) + "/status");
  auto threads_at = status.find("Threads:");
  ASSERT_NE(threads_at, std::string::npos);
  int threads = std::atoi(status.c_str() + threads_at + 8);
  EXPECT_LT(threads, 200) << "the server has a thread per stream";
  for (auto& s : streams) close(s.fd);
  close(ep);
}

}  // namespace
}  // namespace mentat::e2e
