#include "apis/server/metrics.h"

#include <cstdio>
#include <set>

namespace mentat {
namespace {

std::string Num(double v) {
  char buf[64];
  snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

// Label values escape backslash, double quote and newline.
std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace

void Metrics::ObserveRequest(const std::string& route, const std::string& method, int code,
                             double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{route, method, code}];
  auto& h = latency_[{route, method}];
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++h.buckets[i];
  }
  ++h.count;
  h.sum += seconds;
}

std::string Metrics::Render(const std::vector<Sample>& extra) const {
  std::string out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    out += "# HELP mentat_http_requests_total HTTP requests answered, by route, method and code.\n";
    out += "# TYPE mentat_http_requests_total counter\n";
    for (const auto& [k, n] : requests_) {
      const auto& [route, method, code] = k;
      out += "mentat_http_requests_total{route=\"" + Escape(route) + "\",method=\"" + method +
             "\",code=\"" + std::to_string(code) + "\"} " + std::to_string(n) + "\n";
    }
    out += "# HELP mentat_http_request_duration_seconds Time from a request's arrival to its "
           "response (to the start of a stream), by route and method.\n";
    out += "# TYPE mentat_http_request_duration_seconds histogram\n";
    for (const auto& [k, h] : latency_) {
      std::string labels = "route=\"" + Escape(k.first) + "\",method=\"" + k.second + "\"";
      for (size_t i = 0; i < kBuckets.size(); ++i) {
        out += "mentat_http_request_duration_seconds_bucket{" + labels + ",le=\"" +
               Num(kBuckets[i]) + "\"} " + std::to_string(h.buckets[i]) + "\n";
      }
      out += "mentat_http_request_duration_seconds_bucket{" + labels + ",le=\"+Inf\"} " +
             std::to_string(h.count) + "\n";
      out += "mentat_http_request_duration_seconds_sum{" + labels + "} " + Num(h.sum) + "\n";
      out += "mentat_http_request_duration_seconds_count{" + labels + "} " +
             std::to_string(h.count) + "\n";
    }
  }
  std::set<std::string> described;
  for (const auto& s : extra) {
    if (described.insert(s.name).second) {
      out += "# HELP " + s.name + " " + s.help + "\n# TYPE " + s.name + " " + s.type + "\n";
    }
    out += s.name + (s.labels.empty() ? "" : "{" + s.labels + "}") + " " + Num(s.value) + "\n";
  }
  return out;
}

}  // namespace mentat
