// The exec sessions that go through this server (agent_proxy.h). A client holds the server's
// id of a session: random and unguessable, mapped to the node and the agent's own id, and bound
// to the principal that made it. Entries go when the session's output ends, or once nobody has
// used them for `idle`.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>

#include "apis/error.h"

namespace mentat {

struct ExecSessionEntry {
  std::string node;
  std::string agent_id;  // the session's id on the node's agent
  std::string owner;     // the principal that made it
};

class ExecSessionTable {
 public:
  explicit ExecSessionTable(std::chrono::seconds idle) : idle_(idle) {}

  // Records a session and returns its new id.
  std::string Add(ExecSessionEntry entry);
  // The session `id`, for `principal`: kNotFound when there is none (or it ended), kForbidden
  // when it is another principal's. Counts as a use.
  Result<ExecSessionEntry> Find(const std::string& id, const std::string& principal);
  // A reader is on the session's output: it is not idle meanwhile.
  void SetReading(const std::string& id, bool reading);
  void Remove(const std::string& id);
  size_t size();

 private:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    ExecSessionEntry session;
    Clock::time_point last_used;
    bool reading = false;
  };
  void SweepLocked(Clock::time_point now);

  std::chrono::seconds idle_;
  std::mutex mu_;
  std::map<std::string, Entry> entries_;
};

}  // namespace mentat
