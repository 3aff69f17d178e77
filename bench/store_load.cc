#include "bench/store_load.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "e2e/harness.h"

namespace mentat::bench {
namespace {

using Json = nlohmann::json;
using e2e::Base64;

const std::string kPad(900, 'x');  // with the envelope, ~1 KiB per object

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

// A latency as wrk prints it ("812.00us", "3.41ms", "1.02s") in milliseconds.
double WrkMs(const std::string& v) {
  double x = std::atof(v.c_str());
  if (v.find("us") != std::string::npos) return x / 1000;
  if (v.find("ms") != std::string::npos) return x;
  if (v.find('s') != std::string::npos) return x * 1000;
  return x;
}

double CpuSecondsOf(const std::vector<pid_t>& servers) {
  double sum = 0;
  for (pid_t p : servers) sum += std::max(0.0, e2e::CpuSeconds(p));
  return sum;
}

}  // namespace

Json ProfileObject(const std::string& name) {
  return {{"kind", "SecurityProfile"},
          {"metadata", {{"name", name}, {"annotations", {{"pad", kPad}}}}},
          {"spec", {{"driver", "exec"}, {"isolation", "low"}}}};
}

bool PutProfile(StoreKind kind, httplib::Client& client, const std::string& key, bool quiet) {
  if (kind == StoreKind::kEtcd) {
    Json body = {{"key", Base64("/registry/profiles/" + key)},
                 {"value", Base64(ProfileObject(key).dump())}};
    auto r = client.Post("/v3/kv/put", body.dump(), "application/json");
    // The gateway answers 200 with an "error" field when the put failed inside etcd.
    bool ok = r && r->status == 200 && r->body.find("\"error\"") == std::string::npos;
    if (!ok && !quiet) {
      fprintf(stderr, "etcd: %s\n",
              r ? r->body.substr(0, 200).c_str() : httplib::to_string(r.error()).c_str());
    }
    return ok;
  }
  auto r = client.Put("/v1/securityprofiles/" + key, ProfileObject(key).dump(), "application/json");
  bool ok = r && (r->status == 200 || r->status == 201);
  if (!ok && !quiet) {
    if (r) {
      fprintf(stderr, "mentat: HTTP %d %s\n", r->status, r->body.substr(0, 200).c_str());
    } else {
      fprintf(stderr, "mentat: %s\n", httplib::to_string(r.error()).c_str());
    }
  }
  return ok;
}

WriteResult WrkWrites(StoreKind kind, int port, const std::vector<pid_t>& servers, int clients,
                      double seconds, const std::string& prefix, const std::string& dir) {
  const bool etcd = kind == StoreKind::kEtcd;
  std::string script = dir + (etcd ? "/etcd.lua" : "/mentat.lua");
  e2e::WriteFile(script, etcd ? kEtcdLua : kMentatLua);
  std::vector<std::string> argv = {"/usr/bin/wrk",
                                   "-t",
                                   std::to_string(std::min(clients, 2)),
                                   "-c",
                                   std::to_string(clients),
                                   "-d",
                                   std::to_string(static_cast<int>(seconds)) + "s",
                                   "--latency",
                                   "-s",
                                   script,
                                   "http://127.0.0.1:" + std::to_string(port),
                                   "--"};
  if (etcd) {
    std::string p = "/registry/profiles/" + prefix + "-";
    while (p.size() % 3) p += '-';
    argv.push_back(Base64(p));
    argv.push_back(Base64(ProfileObject(prefix).dump()));
  } else {
    argv.push_back(prefix);
  }
  double cpu_before = CpuSecondsOf(servers);
  auto r = e2e::RunCommand(argv);
  double cpu_after = CpuSecondsOf(servers);
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
  if (!w.ok) {
    fprintf(stderr, "%s: wrk reported errors:\n%s%s\n", etcd ? "etcd" : "mentat", r.out.c_str(),
            r.err.c_str());
  }
  return w;
}

std::vector<std::string> EtcdArgv(const EtcdMember& self, const std::vector<EtcdMember>& all) {
  auto url = [](int port) { return "http://127.0.0.1:" + std::to_string(port); };
  std::string initial;
  for (const auto& m : all) initial += (initial.empty() ? "" : ",") + m.name + "=" + url(m.peer);
  return {"/usr/bin/etcd",
          "--name",
          self.name,
          "--data-dir",
          self.data_dir,
          "--listen-client-urls",
          url(self.client),
          "--advertise-client-urls",
          url(self.client),
          "--listen-peer-urls",
          url(self.peer),
          "--initial-advertise-peer-urls",
          url(self.peer),
          "--initial-cluster",
          initial,
          "--initial-cluster-state",
          "new",
          "--log-level",
          "error"};
}

}  // namespace mentat::bench
