// Watch fan-out, measured against etcd 3.4 in the same run: N concurrent watch streams on one
// server, W writes of ~1 KiB made one at a time, and for every write the delay until each stream
// has it. Both stores durable (fsync on commit), both over HTTP/JSON on 127.0.0.1 (mentat's
// `?watch=true`, etcd's streamed `POST /v3/watch` on its v3 JSON gateway). The streams are raw
// non-blocking sockets on one epoll in this process, so the client costs no thread per stream.
//
//   bazel run //bench:watch_fanout_bench -- [streams, default 1000] [writes, default 100]
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "e2e/harness.h"

using namespace mentat::e2e;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

namespace {

// A numeric field of /proc/PID/status ("VmRSS:" in kB, "Threads:"); -1 when absent.
long ProcStatus(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::atol(line.c_str() + field.size());
  }
  return -1;
}

const std::string kPad(900, 'x');  // with the envelope, ~1 KiB per object

// Write i's name. Fixed width, so no name is a prefix of another's marker.
std::string Name(int i) {
  char buf[16];
  snprintf(buf, sizeof(buf), "wf-%06d", i);
  return buf;
}

// etcd's key for write i. The prefix is 24 bytes and the whole key 30, both multiples of 3: the
// key's base64 is the prefix's followed by the name's, with no padding, so the encoded key is a
// fixed string that can be searched for in the raw event bytes.
const std::string kEtcdPrefix = "/registry/watchfanout/";
std::string EtcdKey(int i) { return kEtcdPrefix + "w-" + Name(i).substr(3); }

Json Object(const std::string& name) {
  return {{"kind", "SecurityProfile"},
          {"metadata", {{"name", name}, {"annotations", {{"pad", kPad}}}}},
          {"spec", {{"driver", "exec"}, {"isolation", "low"}}}};
}

// One store under test: how to open a watch on a raw socket, when a stream counts as
// established, what write i looks like in the stream's bytes, and how to make write i.
struct Store {
  std::string name;
  int port;
  pid_t pid;
  std::string watch_request;               // the raw HTTP request that opens one stream
  std::string created;                     // in the body: the stream is established ("" = 200)
  std::function<std::string(int)> marker;  // write i, as it appears in an event
  std::function<bool(httplib::Client&, int)> write;
};

Store Mentat(int port, pid_t pid) {
  return {"mentat",
          port,
          pid,
          "GET /v1/securityprofiles?watch=true HTTP/1.1\r\nHost: 127.0.0.1\r\n"
          "Accept-Encoding: identity\r\n\r\n",
          "",
          [](int i) { return "\"name\":\"" + Name(i) + "\""; },
          [](httplib::Client& c, int i) {
            auto r = c.Put("/v1/securityprofiles/" + Name(i), Object(Name(i)).dump(),
                           "application/json");
            if (!r || (r->status != 200 && r->status != 201)) {
              fprintf(stderr, "mentat: write %d: %s\n", i,
                      r ? r->body.substr(0, 200).c_str() : httplib::to_string(r.error()).c_str());
              return false;
            }
            return true;
          }};
}

Store Etcd(int port, pid_t pid) {
  std::string end = kEtcdPrefix;
  end.back() = '/' + 1;
  std::string body =
      Json{{"create_request", {{"key", Base64(kEtcdPrefix)}, {"range_end", Base64(end)}}}}.dump();
  return {"etcd",
          port,
          pid,
          "POST /v3/watch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
          "Content-Length: " +
              std::to_string(body.size()) + "\r\n\r\n" + body,
          "\"created\":true",
          [](int i) { return "\"key\":\"" + Base64(EtcdKey(i)) + "\""; },
          [](httplib::Client& c, int i) {
            Json put = {{"key", Base64(EtcdKey(i))}, {"value", Base64(Object(Name(i)).dump())}};
            auto r = c.Post("/v3/kv/put", put.dump(), "application/json");
            if (!r || r->status != 200) {
              fprintf(stderr, "etcd: write %d: %s\n", i,
                      r ? r->body.substr(0, 200).c_str() : httplib::to_string(r.error()).c_str());
              return false;
            }
            return true;
          }};
}

// One watch stream: an HTTP/1.1 response read incrementally, de-chunked, and searched for the
// marker of the next write it has not yet seen.
struct Stream {
  int fd = -1;
  bool headers = false;    // the response headers have been read
  bool ok_status = false;  // ...and the status was 200
  bool chunked = false;
  bool established = false;  // 200 (mentat) or the "created" result (etcd)
  bool closed = false;
  size_t chunk_left = 0;    // bytes of the current chunk still to come
  bool chunk_crlf = false;  // the CRLF after a chunk's data is still to come
  int next = 0;             // index of the next write this stream must see
  std::string raw;          // bytes not yet de-chunked (headers, a partial size line)
  std::string tail;         // de-chunked bytes not yet matched; kept short
};

// Moves what can be decoded from s.raw to s.tail.
void Decode(Stream& s) {
  if (!s.headers) {
    auto end = s.raw.find("\r\n\r\n");
    if (end == std::string::npos) return;
    std::string head = s.raw.substr(0, end + 2);
    s.raw.erase(0, end + 4);
    s.headers = true;
    s.ok_status = head.rfind("HTTP/1.1 200", 0) == 0;
    for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    s.chunked = head.find("transfer-encoding: chunked") != std::string::npos;
    if (!s.ok_status) fprintf(stderr, "watch answered: %s\n", head.substr(0, 40).c_str());
  }
  if (!s.chunked) {
    s.tail += s.raw;
    s.raw.clear();
    return;
  }
  size_t at = 0;
  while (at < s.raw.size()) {
    if (s.chunk_left > 0) {
      size_t take = std::min(s.chunk_left, s.raw.size() - at);
      s.tail.append(s.raw, at, take);
      at += take;
      s.chunk_left -= take;
      if (s.chunk_left == 0) s.chunk_crlf = true;
    } else if (s.chunk_crlf) {
      if (s.raw.size() - at < 2) break;
      at += 2;
      s.chunk_crlf = false;
    } else {
      auto eol = s.raw.find("\r\n", at);
      if (eol == std::string::npos) break;
      size_t size = std::strtoul(s.raw.c_str() + at, nullptr, 16);
      at = eol + 2;
      if (size == 0) {  // the last chunk: the server ended the stream
        s.closed = true;
        break;
      }
      s.chunk_left = size;
    }
  }
  s.raw.erase(0, at);
}

struct Result {
  int streams = 0, established = 0, closed = 0, writes = 0, missed = 0;
  double p50 = 0, p99 = 0, max = 0;
  long rss_before_kb = 0, rss_after_kb = 0, threads = 0;
  double setup_s = 0;
};

// One measurement of one store: its streams on one epoll, the writes and when each was sent,
// and every delivery's latency. Open the streams, wait until they are established, make the
// writes, then Finish.
class FanoutRun {
 public:
  FanoutRun(const Store& st, int n_streams, int n_writes)
      : st_(st), streams_(n_streams), written_(n_writes) {
    res_.streams = n_streams;
    res_.rss_before_kb = ProcStatus(st.pid, "VmRSS:");
    latencies_ms_.reserve(static_cast<size_t>(n_streams) * n_writes);
  }

  // Connects every stream and sends its watch request; a stream that fails counts as closed.
  void Open() {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(st_.port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setup_start_ = Clock::now();
    for (size_t i = 0; i < streams_.size(); ++i) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
          write(fd, st_.watch_request.data(), st_.watch_request.size()) !=
              static_cast<ssize_t>(st_.watch_request.size())) {
        fprintf(stderr, "%s: stream %zu: %s\n", st_.name.c_str(), i, strerror(errno));
        if (fd >= 0) close(fd);
        streams_[i].closed = true;
        continue;
      }
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = static_cast<uint32_t>(i);
      epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
      streams_[i].fd = fd;
    }
  }

  // Waits (up to 60 s) until every stream is established or closed.
  void Establish() {
    const int n_streams = static_cast<int>(streams_.size());
    auto deadline = Clock::now() + std::chrono::seconds(60);
    while (res_.established + res_.closed < n_streams && Clock::now() < deadline) Pump(100);
    res_.setup_s = std::chrono::duration<double>(Clock::now() - setup_start_).count();
    if (res_.established < n_streams) {
      fprintf(stderr, "%s: %d of %d watch streams established after %.1f s (%d closed)\n",
              st_.name.c_str(), res_.established, n_streams, res_.setup_s, res_.closed);
    }
  }

  // Makes the writes one at a time; each must reach every established stream within 10 s
  // before the next is made (a stream that misses it counts one miss).
  void WriteAll() {
    httplib::Client cli("127.0.0.1", st_.port);
    cli.set_keep_alive(true);
    cli.set_tcp_nodelay(true);
    cli.set_read_timeout(10, 0);
    cli.set_default_headers({{"Accept-Encoding", "identity"}});
    const int n_writes = static_cast<int>(written_.size());
    for (int w = 0; w < n_writes && res_.established > 0; ++w) {
      if (!WriteOne(cli, w)) break;
      ++res_.writes;
      for (auto& s : streams_) {
        if (s.established && !s.closed && s.next <= w) {
          ++res_.missed;
          s.next = w + 1;  // count it once; look for the next write from here
        }
      }
    }
  }

  // The latencies and the server's memory and threads after the writes; closes the streams.
  Result Finish() {
    res_.rss_after_kb = ProcStatus(st_.pid, "VmRSS:");
    res_.threads = ProcStatus(st_.pid, "Threads:");
    res_.p50 = Percentile(latencies_ms_, 0.50);
    res_.p99 = Percentile(latencies_ms_, 0.99);
    res_.max =
        latencies_ms_.empty() ? 0 : *std::max_element(latencies_ms_.begin(), latencies_ms_.end());
    if (res_.missed > 0) {
      fprintf(stderr, "%s: %d deliveries missed the 10 s deadline\n", st_.name.c_str(),
              res_.missed);
    }
    for (auto& s : streams_) {
      if (s.fd >= 0) close(s.fd);
    }
    close(ep_);
    return res_;
  }

 private:
  // Makes write w from a thread of its own while this one reads the streams, until every
  // established stream has seen it and the write is acknowledged, or 10 s pass.
  bool WriteOne(httplib::Client& cli, int w) {
    std::atomic<bool> acked{false}, ok{false};
    std::thread writer([&] {
      written_[w] = Clock::now();
      sent_.store(w + 1, std::memory_order_release);
      ok = st_.write(cli, w);
      acked = true;
    });
    auto seen = [&] {
      return std::all_of(streams_.begin(), streams_.end(),
                         [&](const Stream& s) { return !s.established || s.closed || s.next > w; });
    };
    auto until = Clock::now() + std::chrono::seconds(10);
    while ((!seen() || !acked) && Clock::now() < until) Pump(5);
    writer.join();
    return ok;
  }

  // Reads what the streams have (waiting up to wait_ms for any), recording each delivery.
  void Pump(int wait_ms) {
    epoll_event events[256];
    int n = epoll_wait(ep_, events, 256, wait_ms);
    for (int e = 0; e < n; ++e) {
      Stream& s = streams_[events[e].data.u32];
      Read(s);
      if (s.closed) {
        epoll_ctl(ep_, EPOLL_CTL_DEL, s.fd, nullptr);
        ++res_.closed;
      }
    }
  }

  // Drains one stream's socket: decodes it, marks it established, and matches the markers of
  // writes already sent, in order.
  void Read(Stream& s) {
    char buf[65536];
    for (;;) {
      ssize_t r = read(s.fd, buf, sizeof(buf));
      auto now = Clock::now();
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) s.closed = true;
      if (r <= 0) break;
      s.raw.append(buf, r);
      Decode(s);
      if (!s.established && s.headers && s.ok_status &&
          (st_.created.empty() || s.tail.find(st_.created) != std::string::npos)) {
        s.established = true;
        ++res_.established;
      }
      // The writer publishes written_[w] before it sends write w, then sent_ = w + 1; a stream
      // only looks for markers of writes already sent.
      int limit = sent_.load(std::memory_order_acquire);
      while (s.next < limit) {
        std::string marker = st_.marker(s.next);
        auto at = s.tail.find(marker);
        if (at == std::string::npos) break;
        latencies_ms_.push_back(
            std::chrono::duration<double, std::milli>(now - written_[s.next]).count());
        s.tail.erase(0, at + marker.size());
        ++s.next;
      }
      // A marker split across reads survives in the last 256 bytes.
      if (s.tail.size() > 4096) s.tail.erase(0, s.tail.size() - 256);
      if (s.closed) break;
    }
  }

  const Store& st_;
  int ep_ = -1;
  std::vector<Stream> streams_;
  std::vector<Clock::time_point> written_;
  std::atomic<int> sent_{0};
  std::vector<double> latencies_ms_;
  Clock::time_point setup_start_;
  Result res_;
};

Result Measure(const Store& st, int n_streams, int n_writes) {
  FanoutRun run(st, n_streams, n_writes);
  run.Open();
  run.Establish();
  run.WriteAll();
  return run.Finish();
}

void Stop(Process& p, const char* name) {
  p.Signal(SIGTERM);
  if (!p.Wait(std::chrono::seconds(15))) {
    fprintf(stderr, "%s did not exit on SIGTERM within 15 s; killing it\n", name);
    p.Signal(SIGKILL);
    p.Wait(std::chrono::seconds(5));
  }
}

}  // namespace

int main(int argc, char** argv) {
  int n_streams = argc > 1 ? std::atoi(argv[1]) : 1000;
  int n_writes = argc > 2 ? std::atoi(argv[2]) : 100;
  signal(SIGPIPE, SIG_IGN);
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < static_cast<rlim_t>(n_streams + 100)) {
    fprintf(stderr, "RLIMIT_NOFILE %lu is too low for %d streams\n",
            static_cast<unsigned long>(rl.rlim_cur), n_streams);
    return 1;
  }

  std::string dir = TempDir("watch-fanout-bench");
  int mport = FreePort(), eport = FreePort(), epeer = FreePort();
  Process mentat(
      {Runfile("cmd/mentat-server/mentat-server"), "--listen", "127.0.0.1:" + std::to_string(mport),
       "--data-dir", dir + "/mentat", "--log-level", "warn", "--auth", "none",
       // every stream comes from this one address
       "--max-connections-per-client", "0"},
      dir + "/mentat.log");
  std::string e = "http://127.0.0.1:" + std::to_string(eport);
  std::string p = "http://127.0.0.1:" + std::to_string(epeer);
  Process etcd(
      {"/usr/bin/etcd", "--name", "bench", "--data-dir", dir + "/etcd", "--listen-client-urls", e,
       "--advertise-client-urls", e, "--listen-peer-urls", p, "--initial-advertise-peer-urls", p,
       "--initial-cluster", "bench=" + p, "--log-level", "error"},
      dir + "/etcd.log");
  int rc = 0;
  bool complete = false;  // every stream established, every write made and delivered everywhere
  if (!WaitFor([&] { return HttpGet(mport, "/healthz").first == 200; }, std::chrono::seconds(20)) ||
      !WaitFor([&] { return HttpGet(eport, "/health").first == 200; }, std::chrono::seconds(20))) {
    fprintf(stderr, "servers did not start\n%s\n%s\n", mentat.Log().c_str(), etcd.Log().c_str());
    rc = 1;
  } else {
    // One store at a time, the other idle, so they do not share the CPU while measured.
    Result r[2] = {Measure(Mentat(mport, mentat.pid()), n_streams, n_writes),
                   Measure(Etcd(eport, etcd.pid()), n_streams, n_writes)};
    printf(
        "watch fan-out: %d streams (raw sockets, one epoll), %d writes of ~1 KiB one at a "
        "time,\nfsync on commit, HTTP/JSON on 127.0.0.1; delivery = write sent -> event read\n\n",
        n_streams, n_writes);
    auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
    printf("%-26s %10s %10s %8s\n", "", "mentat", "etcd 3.4", "ratio");
    printf("%-26s %10d %10d\n", "streams established", r[0].established, r[1].established);
    printf("%-26s %10.2f %10.2f %7.2fx\n", "  time to establish s", r[0].setup_s, r[1].setup_s,
           ratio(r[0].setup_s, r[1].setup_s));
    printf("%-26s %10d %10d\n", "writes made", r[0].writes, r[1].writes);
    printf("%-26s %10d %10d\n", "deliveries missed (10 s)", r[0].missed, r[1].missed);
    printf("%-26s %10d %10d\n", "streams closed by server", r[0].closed, r[1].closed);
    printf("%-26s %10.2f %10.2f %7.2fx\n", "delivery p50 ms", r[0].p50, r[1].p50,
           ratio(r[0].p50, r[1].p50));
    printf("%-26s %10.2f %10.2f %7.2fx\n", "delivery p99 ms", r[0].p99, r[1].p99,
           ratio(r[0].p99, r[1].p99));
    printf("%-26s %10.2f %10.2f %7.2fx\n", "delivery max ms", r[0].max, r[1].max,
           ratio(r[0].max, r[1].max));
    double before[2] = {r[0].rss_before_kb / 1024.0, r[1].rss_before_kb / 1024.0};
    double growth[2] = {(r[0].rss_after_kb - r[0].rss_before_kb) / 1024.0,
                        (r[1].rss_after_kb - r[1].rss_before_kb) / 1024.0};
    printf("%-26s %10.1f %10.1f %7.2fx\n", "server RSS before MB", before[0], before[1],
           ratio(before[0], before[1]));
    printf("%-26s %10.1f %10.1f %7.2fx\n", "server RSS growth MB", growth[0], growth[1],
           ratio(growth[0], growth[1]));
    printf("%-26s %10ld %10ld %7.2fx\n", "server threads", r[0].threads, r[1].threads,
           ratio(r[0].threads, r[1].threads));
    printf("\n(issue 5 targets: 1,000 watchers, delivery p99 < 100 ms, memory growth < 200 MB)\n");
    complete = std::all_of(std::begin(r), std::end(r), [&](const Result& x) {
      return x.established == n_streams && x.writes == n_writes && x.missed == 0 && x.closed == 0;
    });
  }
  Stop(mentat, "mentat-server");
  Stop(etcd, "etcd");
  // etcd preallocates 60 MB of WAL: leave nothing behind, except the logs of an incomplete run
  // (which still exits 0 when the table was printed: a peer falling short is a result).
  if (complete) {
    std::filesystem::remove_all(dir);
  } else {
    fprintf(stderr, "logs kept in %s\n", dir.c_str());
  }
  return rc;
}
