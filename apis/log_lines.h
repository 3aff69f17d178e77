// The line format of merged logs (GET /v1/allocations/NAME/logs?stream=all), as the CRI's
// container log files have it: "<RFC 3339 UTC time, ns> <stdout|stderr> <F|P> <content>\n".
// F marks a whole line, P a piece of one that has not ended (only ever the last, unfollowed).
// The agent formats; mt (and a server relaying logs) parse.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mentat {

struct LogLine {
  std::string time;    // as sent: 2026-12-06T14:27:30.123456789Z
  std::string stream;  // "stdout" or "stderr"
  bool full = true;    // F; false: P
  std::string content; // without the newline
  // The bytes of its stream this line stands for (content, and its newline when full): what a
  // client adds to the stream's offset to resume after it.
  int64_t bytes() const { return static_cast<int64_t>(content.size()) + (full ? 1 : 0); }
};

// Unix nanoseconds as RFC 3339 in UTC with nine fractional digits.
std::string FormatRfc3339Nano(int64_t unix_ns);

// One line of the format, newline included.
std::string FormatLogLine(int64_t unix_ns, std::string_view stream, bool full, std::string_view content);

// A line of the format without its newline; nullopt when it is not one.
std::optional<LogLine> ParseLogLine(std::string_view line);

// "OUT,ERR": each stream's offset, as the X-Log-Start header and the offset parameter give them.
std::string FormatLogOffsets(int64_t out, int64_t err);
std::optional<std::pair<int64_t, int64_t>> ParseLogOffsets(std::string_view s);

}  // namespace mentat
