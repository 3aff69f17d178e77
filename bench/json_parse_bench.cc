// The API's JSON fast path (apis/json_text: simdjson, building nlohmann's value) against
// nlohmann's own parser, the peer, on the bodies the write path sees: the ~1 KiB object of
// store_bench, a Service manifest as `mt apply` sends it, and a 66 KiB one (beyond the size
// whose parser a thread keeps).
//
//   bazel run //bench:json_parse_bench -- [iterations, default 100000]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "apis/json_text.h"

using mentat::Json;

namespace {

// Mean nanoseconds per call of `parse` over `n` calls (after one untimed call).
template <class Parse>
double NanosPerParse(Parse parse, int n) {
  size_t sink = parse();
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) sink += parse();
  std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - start;
  if (sink == 0) std::abort();  // every parse gives a non-empty object
  return took.count() / n;
}

Json StoreBenchObject() {
  return {{"kind", "SecurityProfile"},
          {"metadata", {{"name", "k-1-22"}, {"annotations", {{"pad", std::string(900, 'x')}}}}},
          {"spec", {{"driver", "exec"}, {"isolation", "low"}}}};
}

Json ServiceManifest(int env_vars) {
  Json env = Json::object();
  for (int i = 0; i < env_vars; ++i) env["VAR_" + std::to_string(i)] = "value \"" + std::to_string(i) + "\"\tcafé";
  return {{"kind", "Service"},
          {"metadata", {{"name", "hello"}, {"namespace", "default"}, {"labels", {{"app", "hello"}}}}},
          {"spec",
           {{"driver", "exec"},
            {"replicas", 3},
            {"command", {"/usr/bin/python3", "-m", "http.server", "18080"}},
            {"env", env},
            {"resources", {{"cpu", 0.5}, {"memory", "128Mi"}}},
            {"health", {{"http", {{"path", "/"}, {"port", 18080}}}, {"interval", "2s"}}}}}};
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 100000;
  struct Doc {
    const char* name;
    std::string text;
    int iterations;
  } docs[] = {{"store_bench object", StoreBenchObject().dump(), n},
              {"Service manifest", ServiceManifest(4).dump(), n},
              {"Service, 2,000 env vars", ServiceManifest(2000).dump(), n / 200}};
  printf("JSON body -> nlohmann value, ns per parse (mean)\n");
  printf("%-26s %8s %12s %12s %8s\n", "body", "bytes", "simdjson", "nlohmann", "ratio");
  for (const Doc& d : docs) {
    if (!mentat::ParseJsonFast(d.text, 64)) {
      fprintf(stderr, "the fast path declined the %s\n", d.name);
      return 1;
    }
    double fast = NanosPerParse([&] { return mentat::ParseJsonFast(d.text, 64)->size(); }, d.iterations);
    double peer = NanosPerParse([&] { return Json::parse(d.text).size(); }, d.iterations);
    printf("%-26s %8zu %12.0f %12.0f %7.2fx\n", d.name, d.text.size(), fast, peer, fast / peer);
  }
  return 0;
}
