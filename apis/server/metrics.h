// The server's Prometheus metrics (text exposition format 0.0.4): HTTP requests by route,
// method and code, with latency histograms, plus gauges read at scrape time. Debian ships
// no C++ Prometheus client, so this is the small part of one the server needs.
#pragma once

#include <array>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

namespace mentat {

class Metrics {
 public:
  // Upper bounds of the latency histogram buckets, in seconds.
  static constexpr std::array<double, 14> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                                      5,      10};

  void ObserveRequest(const std::string& route, const std::string& method, int code,
                      double seconds);

  struct Sample {
    std::string name;    // e.g. mentat_store_revision
    std::string help;
    std::string type;    // gauge or counter
    std::string labels;  // e.g. controller="service", or empty
    double value;
  };
  // The exposition text: the request metrics, then `extra` (computed by the caller now).
  std::string Render(const std::vector<Sample>& extra) const;

 private:
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> buckets{};
    uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, int>, uint64_t> requests_;
  std::map<std::pair<std::string, std::string>, Histogram> latency_;
};

}  // namespace mentat
