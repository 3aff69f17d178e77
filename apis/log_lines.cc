#include "apis/log_lines.h"

#include <cstdio>
#include <ctime>

namespace mentat {
namespace {

std::optional<int64_t> ParseCount(std::string_view s) {
  if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  int64_t v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}

}  // namespace

std::string FormatRfc3339Nano(int64_t unix_ns) {
  int64_t secs = unix_ns / 1'000'000'000;
  int64_t nanos = unix_ns % 1'000'000'000;
  if (nanos < 0) {
    nanos += 1'000'000'000;
    --secs;
  }
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%09lldZ", static_cast<long long>(nanos));
  return buf;
}

std::string FormatLogLine(int64_t unix_ns, std::string_view stream, bool full, std::string_view content) {
  std::string out = FormatRfc3339Nano(unix_ns);
  out.reserve(out.size() + stream.size() + content.size() + 5);
  out += ' ';
  out += stream;
  out += full ? " F " : " P ";
  out += content;
  out += '\n';
  return out;
}

std::optional<LogLine> ParseLogLine(std::string_view line) {
  LogLine l;
  auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return std::nullopt;
  auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.size() < sp2 + 3 || line[sp2 + 2] != ' ') return std::nullopt;
  l.time = line.substr(0, sp1);
  l.stream = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (l.stream != "stdout" && l.stream != "stderr") return std::nullopt;
  char tag = line[sp2 + 1];
  if (tag != 'F' && tag != 'P') return std::nullopt;
  l.full = tag == 'F';
  l.content = line.substr(sp2 + 3);
  return l;
}

std::string FormatLogOffsets(int64_t out, int64_t err) {
  return std::to_string(out) + "," + std::to_string(err);
}

std::optional<std::pair<int64_t, int64_t>> ParseLogOffsets(std::string_view s) {
  auto comma = s.find(',');
  if (comma == std::string_view::npos) return std::nullopt;
  auto out = ParseCount(s.substr(0, comma));
  auto err = ParseCount(s.substr(comma + 1));
  if (!out || !err) return std::nullopt;
  return std::pair{*out, *err};
}

}  // namespace mentat
