// What a client may hold of the HTTP server (HttpLimits), and the count of open connections by
// client address that enforces the caps on connections. A stranger who opens thousands of
// idle connections, or trickles a request a byte at a time, is refused or cut off while
// everyone else is served.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace mentat {

struct HttpLimits {
  // Connections open at once, in all. 0: the open-file limit less a reserve for the store,
  // logs and uploads (an eighth of it, at least 64).
  size_t max_connections = 0;
  // Connections open at once from one client IP address (0: no cap).
  size_t max_connections_per_client = 512;
  // A request's head must be in whole this long after its first byte (for a new connection:
  // after it was accepted, the TLS handshake included), however slowly it trickles in.
  std::chrono::seconds header_timeout{15};
  // A body must be in whole within header_timeout plus its length at this rate (bytes/s).
  uint64_t min_body_rate = 64 << 10;
};

// The max_connections a limit of 0 stands for, given the process's open-file limit.
size_t AutoMaxConnections(uint64_t open_file_limit);

// Open connections by client address. Not thread-safe: the server's loop thread owns it.
class ConnectionLimits {
 public:
  enum class Verdict { kAdmit, kTooManyInAll, kTooManyFromClient };

  ConnectionLimits(size_t max_total, size_t max_per_client)
      : max_total_(max_total), max_per_client_(max_per_client) {}

  // Counts a new connection from `client` if the caps allow it; each admitted connection must
  // be Released exactly once.
  Verdict Admit(const std::string& client);
  void Release(const std::string& client);

  size_t open() const { return open_; }
  size_t max_total() const { return max_total_; }
  size_t max_per_client() const { return max_per_client_; }

 private:
  size_t max_total_;
  size_t max_per_client_;
  size_t open_ = 0;
  std::map<std::string, size_t> by_client_;
};

}  // namespace mentat
