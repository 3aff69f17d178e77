// The server's identity toward node agents: a random secret kept in the data dir (mode 0600,
// made on first start), from which each node's agent key is derived (apis/agent_key.h). The
// server calls a node's agent with that node's key and nothing else: no user credential ever
// leaves the server.
#pragma once

#include <memory>
#include <string>

#include "apis/error.h"

namespace mentat {

class AgentKeys {
 public:
  // Reads the secret at `path`, or makes one there when there is none yet. A file that is not
  // a secret of this form (64 hex digits) is an error naming it: a new secret would silently
  // lock every agent out.
  static Result<std::unique_ptr<AgentKeys>> Open(const std::string& path);
  // A fixed secret (tests).
  static std::unique_ptr<AgentKeys> ForSecret(std::string secret);

  // The key of `node`'s agent.
  std::string KeyFor(const std::string& node) const;

 private:
  explicit AgentKeys(std::string secret) : secret_(std::move(secret)) {}
  std::string secret_;
};

}  // namespace mentat
