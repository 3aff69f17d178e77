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

#include "e2e/harness.h"

using namespace mentat::e2e;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

namespace {

const std::string kPad(900, 'x');  // with the envelope, ~1 KiB per object

// One store under test: how to write object i, and how to read things back.
struct Target {
  std::string name;
  int port;
  std::function<bool(httplib::Client&, const std::string& key)> put;
};

Target Mentat(int port) {
  return {"mentat", port, [](httplib::Client& c, const std::string& key) {
            Json obj = {{"kind", "SecurityProfile"},
                        {"metadata", {{"name", key}, {"annotations", {{"pad", kPad}}}}},
                        {"spec", {{"driver", "exec"}, {"isolation", "low"}}}};
            auto r = c.Put("/v1/securityprofiles/" + key, obj.dump(), "application/json");
            if (r && r->status != 200 && r->status != 201) {
              fprintf(stderr, "mentat: HTTP %d %s\n", r->status, r->body.substr(0, 200).c_str());
            } else if (!r) {
              fprintf(stderr, "mentat: %s\n", httplib::to_string(r.error()).c_str());
            }
            return r && (r->status == 200 || r->status == 201);
          }};
}

Target Etcd(int port) {
  return {"etcd", port, [](httplib::Client& c, const std::string& key) {
            Json value = {{"kind", "SecurityProfile"},
                          {"metadata", {{"name", key}, {"annotations", {{"pad", kPad}}}}},
                          {"spec", {{"driver", "exec"}, {"isolation", "low"}}}};
            Json body = {{"key", Base64("/registry/profiles/" + key)}, {"value", Base64(value.dump())}};
            auto r = c.Post("/v3/kv/put", body.dump(), "application/json");
            return r && r->status == 200;
          }};
}

struct WriteResult {
  double per_sec = 0, p50_ms = 0, p99_ms = 0;
  double cpu_ms_per_1000 = 0;  // the server's CPU time per 1,000 writes
  bool ok = false;
};

// The write load comes from wrk (a Debian package, written in C and driven by a small Lua
// script), the same tool for both stores: a client this light leaves both servers the same
// CPU on this 2-core machine. Every request writes a new key, so every one is a real,
// fsynced write in both stores.
const char* kMentatLua = R"(
local threads = 0
function setup(thread) thread:set("id", threads); threads = threads + 1 end
local counter = 0
local pad = string.rep("x", 900)
function init(args) prefix = args[1] .. "-" .. tostring(id) .. "-" end
function request()
  counter = counter + 1
  local name = prefix .. counter
  return wrk.format("PUT", "/v1/securityprofiles/" .. name, {["Content-Type"] = "application/json"},
    '{"kind":"SecurityProfile","metadata":{"name":"' .. name .. '","annotations":{"pad":"' .. pad ..
    '"}},"spec":{"driver":"exec","isolation":"low"}}')
end
)";

// etcd's JSON gateway takes base64 keys. The key prefix is passed already encoded (its length
// a multiple of 3, so encodings concatenate) and the unique suffix is written directly in
// base64 digits: 8 of them, from the thread id and a counter.
const char* kEtcdLua = R"(
local threads = 0
function setup(thread) thread:set("id", threads); threads = threads + 1 end
local counter = 0
local digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
function init(args) prefix = args[1]; value = args[2] end
function request()
  counter = counter + 1
  local n = id * 68719476736 + counter
  local s = ""
  for i = 1, 8 do
    local d = n % 64
    s = digits:sub(d + 1, d + 1) .. s
    n = (n - d) / 64
  end
  return wrk.format("POST", "/v3/kv/put", {["Content-Type"] = "application/json"},
    '{"key":"' .. prefix .. s .. '","value":"' .. value .. '"}')
end
)";

double WrkMs(const std::string& v) {
  double x = std::atof(v.c_str());
  if (v.find("us") != std::string::npos) return x / 1000;
  if (v.find("ms") != std::string::npos) return x;
  if (v.find('s') != std::string::npos) return x * 1000;
  return x;
}

WriteResult WriteRun(const Target& t, pid_t server, bool etcd, int clients, double seconds,
                     const std::string& prefix, const std::string& dir) {
  std::string script = dir + (etcd ? "/etcd.lua" : "/mentat.lua");
  WriteFile(script, etcd ? kEtcdLua : kMentatLua);
  std::vector<std::string> argv = {"/usr/bin/wrk", "-t", std::to_string(std::min(clients, 2)),
                                   "-c", std::to_string(clients), "-d",
                                   std::to_string(static_cast<int>(seconds)) + "s", "--latency",
                                   "-s", script, "http://127.0.0.1:" + std::to_string(t.port), "--"};
  if (etcd) {
    std::string p = "/registry/profiles/" + prefix + "-";
    while (p.size() % 3) p += '-';
    Json value = {{"kind", "SecurityProfile"},
                  {"metadata", {{"name", prefix}, {"annotations", {{"pad", kPad}}}}},
                  {"spec", {{"driver", "exec"}, {"isolation", "low"}}}};
    argv.push_back(Base64(p));
    argv.push_back(Base64(value.dump()));
  } else {
    argv.push_back(prefix);
  }
  double cpu_before = CpuSeconds(server);
  auto r = RunCommand(argv);
  double cpu_after = CpuSeconds(server);
  WriteResult w;
  auto field = [&](const std::string& label) -> std::string {
    auto at = r.out.find(label);
    if (at == std::string::npos) return "";
    at += label.size();
    while (at < r.out.size() && r.out[at] == ' ') ++at;
    return r.out.substr(at, r.out.find_first_of(" \n", at) - at);
  };
  w.per_sec = std::atof(field("Requests/sec:").c_str());
  w.p50_ms = WrkMs(field(" 50%"));
  w.p99_ms = WrkMs(field(" 99%"));
  // "  123456 requests in 5.00s, ..."
  auto in = r.out.find(" requests in ");
  auto start = r.out.rfind('\n', in);
  double requests = in == std::string::npos ? 0 : std::atof(r.out.c_str() + start + 1);
  if (requests > 0) w.cpu_ms_per_1000 = (cpu_after - cpu_before) * 1000 * 1000 / requests;
  w.ok = r.exit_code == 0 && w.per_sec > 0 && r.out.find("Non-2xx") == std::string::npos &&
         r.out.find("Socket errors") == std::string::npos;
  if (!w.ok) fprintf(stderr, "%s: wrk reported errors:\n%s%s\n", t.name.c_str(), r.out.c_str(), r.err.c_str());
  return w;
}

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
  std::string e = "http://127.0.0.1:" + std::to_string(eport);
  std::string p = "http://127.0.0.1:" + std::to_string(epeer);
  Process etcd({"/usr/bin/etcd", "--name", "bench", "--data-dir", dir + "/etcd",
                "--listen-client-urls", e, "--advertise-client-urls", e, "--listen-peer-urls", p,
                "--initial-advertise-peer-urls", p, "--initial-cluster", "bench=" + p,
                "--log-level", "error"},
               dir + "/etcd.log");
  if (!WaitFor([&] { return HttpGet(mport, "/healthz").first == 200; }, std::chrono::seconds(20)) ||
      !WaitFor([&] { return HttpGet(eport, "/health").first == 200; }, std::chrono::seconds(20))) {
    fprintf(stderr, "servers did not start\n%s\n%s\n", mentat.Log().c_str(), etcd.Log().c_str());
    return 1;
  }
  Target targets[] = {Mentat(mport), Etcd(eport)};

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
      r[i] = WriteRun(targets[i], i == 0 ? mentat.pid() : etcd.pid(), i == 1, clients, seconds,
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
