// The store, measured against etcd 3.4 in the same run. Both durable (fsync on commit), both
// driven over HTTP/JSON on 127.0.0.1 (mentat's API, etcd's v3 JSON gateway), ~1 KiB objects:
//   - writes/s and p50/p99 latency with 1, 16 and 64 concurrent clients
//   - the server's CPU time per 1,000 writes (user + system, from /proc): on a shared 2-core
//     machine far steadier than writes/s, which moves with whatever else runs
//   - watch delivery p99 (write acknowledged -> event received)
//   - listing 10,000 objects
//
//   bazel run //bench:store_bench -- [seconds per write run, default 3]
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

#include <httplib.h>

#include "bench/store_load.h"
#include "e2e/harness.h"

using namespace mentat::e2e;
using namespace mentat::bench;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

namespace {

// One store under test: its kind and API port.
struct Target {
  std::string name;
  StoreKind kind;
  int port;
  bool put(httplib::Client& c, const std::string& key) const { return PutProfile(kind, c, key); }
};

// Watch delivery: one watcher; writes one at a time; latency = event received - write acked.
double WatchP99(const Target& t, bool etcd, int writes) {
  std::mutex mu;
  std::map<std::string, Clock::time_point> received;
  std::atomic<bool> stop{false};
  std::atomic<bool> ready{false};
  httplib::Client wc("127.0.0.1", t.port);
  wc.set_read_timeout(60, 0);
  wc.set_tcp_nodelay(true);
  wc.set_default_headers({{"Accept-Encoding", "identity"}});
  std::thread watcher([&] {
    std::string buf;
    auto on_data = [&](const char* d, size_t n) {
      buf.append(d, n);
      size_t nl;
      while ((nl = buf.find('\n')) != std::string::npos) {
        Json ev = Json::parse(buf.substr(0, nl), nullptr, false);
        buf.erase(0, nl + 1);
        auto now = Clock::now();
        std::lock_guard<std::mutex> lock(mu);
        if (etcd) {
          const Json& r = ev.value("result", Json::object());
          if (r.value("created", false)) ready = true;
          for (const auto& e : r.value("events", Json::array())) {
            std::string key = e["kv"].value("key", "");
            received.emplace(key, now);
          }
        } else if (ev.value("type", "") == "ADDED" || ev.value("type", "") == "MODIFIED") {
          received.emplace(Base64("/registry/profiles/" + ev["object"]["metadata"].value("name", "")), now);
        }
      }
      return !stop.load();
    };
    if (etcd) {
      Json req = {{"create_request",
                   {{"key", Base64("/registry/profiles/watch-")}, {"range_end", Base64("/registry/profiles/watch.")}}}};
      // etcd's watch is a streamed POST; cpp-httplib 0.11 streams responses through send().
      httplib::Request hreq;
      hreq.method = "POST";
      hreq.path = "/v3/watch";
      hreq.body = req.dump();
      hreq.set_header("Content-Type", "application/json");
      hreq.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
        return on_data(d, n);
      };
      httplib::Response hres;
      httplib::Error err;
      wc.send(hreq, hres, err);
    } else {
      ready = true;
      wc.Get("/v1/securityprofiles?watch=true", [&](const char* d, size_t n) { return on_data(d, n); });
    }
  });
  WaitFor([&] { return ready.load(); }, std::chrono::seconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // let the stream settle
  httplib::Client cli("127.0.0.1", t.port);
  cli.set_keep_alive(true);
  cli.set_tcp_nodelay(true);
  cli.set_default_headers({{"Accept-Encoding", "identity"}});
  std::vector<double> lat;
  for (int i = 0; i < writes; ++i) {
    std::string key = "watch-" + std::to_string(i);
    t.put(cli, key);
    auto acked = Clock::now();
    std::string k64 = Base64("/registry/profiles/" + key);
    WaitFor([&] {
      std::lock_guard<std::mutex> lock(mu);
      return received.count(k64) > 0;
    }, std::chrono::seconds(5), std::chrono::milliseconds(0));
    std::lock_guard<std::mutex> lock(mu);
    if (received.count(k64)) {
      lat.push_back(std::max(0.0, std::chrono::duration<double, std::milli>(received[k64] - acked).count()));
    }
  }
  stop = true;
  wc.stop();
  watcher.join();
  return Percentile(lat, 0.99);
}

// The time to fetch the whole list, measured by curl (an efficient client that is neither
// store's own; cpp-httplib's client alone takes ~100 ms to read 10 MB). The item count is
// checked afterwards, outside the timing.
double ListMs(const Target& t, bool etcd, size_t expect) {
  std::string url = "http://127.0.0.1:" + std::to_string(t.port);
  Json req = {{"key", Base64("/registry/profiles/list-")}, {"range_end", Base64("/registry/profiles/list.")}};
  std::vector<std::string> argv = {"/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{time_total}"};
  if (etcd) {
    argv.insert(argv.end(), {"-X", "POST", "-H", "Content-Type: application/json", "-d", req.dump(),
                             url + "/v3/kv/range"});
  } else {
    argv.push_back(url + "/v1/securityprofiles");
  }
  std::vector<double> runs;
  for (int i = 0; i < 5; ++i) runs.push_back(std::atof(RunCommand(argv).out.c_str()) * 1000);
  httplib::Client cli("127.0.0.1", t.port);
  cli.set_read_timeout(60, 0);
  auto r = etcd ? cli.Post("/v3/kv/range", req.dump(), "application/json")
                : cli.Get("/v1/securityprofiles");
  Json body = Json::parse(r ? r->body : "", nullptr, false);
  size_t n = etcd ? body.value("kvs", Json::array()).size() : body.value("items", Json::array()).size();
  if (n < expect) fprintf(stderr, "%s listed %zu, expected at least %zu\n", t.name.c_str(), n, expect);
  return Percentile(runs, 0.5);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 3;
  std::string dir = TempDir("store-bench");
  int mport = FreePort(), eport = FreePort(), epeer = FreePort();
  Process mentat({Runfile("cmd/mentat-server/mentat-server"), "--listen",
                  "127.0.0.1:" + std::to_string(mport), "--data-dir", dir + "/mentat",
                  "--log-level", "warn", "--auth", "none"},
                 dir + "/mentat.log");
  EtcdMember etcd_member{"bench", eport, epeer, dir + "/etcd"};
  Process etcd(EtcdArgv(etcd_member, {etcd_member}), dir + "/etcd.log");
  if (!WaitFor([&] { return HttpGet(mport, "/healthz").first == 200; }, std::chrono::seconds(20)) ||
      !WaitFor([&] { return HttpGet(eport, "/health").first == 200; }, std::chrono::seconds(20))) {
    fprintf(stderr, "servers did not start\n%s\n%s\n", mentat.Log().c_str(), etcd.Log().c_str());
    return 1;
  }
  Target targets[] = {{"mentat", StoreKind::kMentat, mport}, {"etcd", StoreKind::kEtcd, eport}};

  printf("store benchmark: ~1 KiB objects, fsync on commit, HTTP/JSON on 127.0.0.1, %.0fs per run\n\n", seconds);
  printf("%-22s %12s %12s %8s\n", "", "mentat", "etcd 3.4", "ratio");
  // The list first, while each store holds just the 10,000 objects (the write runs add
  // tens of thousands more).
  // 10,000 objects to list, written by 64 clients.
  for (int i = 0; i < 2; ++i) {
    std::vector<std::thread> th;
    for (int c = 0; c < 64; ++c) {
      th.emplace_back([&, c, i] {
        httplib::Client cli("127.0.0.1", targets[i].port);
        cli.set_keep_alive(true);
        for (int k = c; k < 10000; k += 64) targets[i].put(cli, "list-" + std::to_string(k));
      });
    }
    for (auto& t : th) t.join();
  }
  double l[2] = {ListMs(targets[0], false, 10000), ListMs(targets[1], true, 10000)};
  printf("%-22s %12.1f %12.1f %7.2fx\n", "list 10,000 objects ms", l[0], l[1], l[0] / l[1]);
  for (int clients : {1, 16, 64}) {
    WriteResult r[2];
    for (int i = 0; i < 2; ++i) {
      pid_t server = i == 0 ? mentat.pid() : etcd.pid();
      r[i] = WrkWrites(targets[i].kind, targets[i].port, {server}, clients, seconds,
                       "w" + std::to_string(clients), dir);
    }
    printf("%-22s %12.0f %12.0f %7.2fx\n", ("writes/s, " + std::to_string(clients) + " clients").c_str(),
           r[0].per_sec, r[1].per_sec, r[0].per_sec / r[1].per_sec);
    printf("%-22s %12.2f %12.2f %7.2fx\n", "  p50 ms", r[0].p50_ms, r[1].p50_ms, r[0].p50_ms / r[1].p50_ms);
    printf("%-22s %12.2f %12.2f %7.2fx\n", "  p99 ms", r[0].p99_ms, r[1].p99_ms, r[0].p99_ms / r[1].p99_ms);
    printf("%-22s %12.1f %12.1f %7.2fx\n", "  CPU ms/1000 writes", r[0].cpu_ms_per_1000,
           r[1].cpu_ms_per_1000, r[0].cpu_ms_per_1000 / r[1].cpu_ms_per_1000);
  }
  double w[2] = {WatchP99(targets[0], false, 300), WatchP99(targets[1], true, 300)};
  printf("%-22s %12.2f %12.2f %7.2fx\n", "watch delivery p99 ms", w[0], w[1], w[0] / w[1]);
  printf("\n(targets: writes/s at 64 clients >= 2x etcd; watch p99 <= etcd; list < 100 ms)\n");
  mentat.Signal(SIGTERM);
  etcd.Signal(SIGTERM);
  mentat.Wait(std::chrono::seconds(10));
  etcd.Wait(std::chrono::seconds(10));
  return 0;
}
