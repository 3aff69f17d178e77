#include "apis/server/agent_keys.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "apis/agent_key.h"
#include "apis/server/auth.h"

namespace mentat {
namespace {

bool IsSecret(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<AgentKeys>> AgentKeys::Open(const std::string& path) {
  std::ifstream in(path);
  if (in) {
    std::string secret;
    std::getline(in, secret);
    if (!IsSecret(secret)) {
      return FailedPrecondition(path +
                                " is not an agent secret (64 hex digits); restore it, or "
                                "delete it to make a new one (every agent then fetches its new "
                                "key when it next connects)");
    }
    return std::unique_ptr<AgentKeys>(new AgentKeys(std::move(secret)));
  }
  if (errno != ENOENT) return Internal("reading " + path + ": " + std::strerror(errno));
  std::string secret = RandomHex(32);
  if (secret.empty()) return Internal("no randomness for the agent secret");
  MT_RETURN_IF_ERROR(WriteSecretFile(path, secret + "\n"));
  return std::unique_ptr<AgentKeys>(new AgentKeys(std::move(secret)));
}

std::unique_ptr<AgentKeys> AgentKeys::ForSecret(std::string secret) {
  return std::unique_ptr<AgentKeys>(new AgentKeys(std::move(secret)));
}

std::string AgentKeys::KeyFor(const std::string& node) const { return AgentKeyFor(secret_, node); }

}  // namespace mentat
