// API authentication and roles. Bearer tokens live in a file (YAML, mode 0600) as SHA-256
// hashes: a token is shown once, when it is made, and never stored in the clear.
//
// Roles:
//   read-only  every GET
//   operator   read-only, plus apply/delete of Services (and logs/exec, when they exist)
//   admin      everything: security profiles, nodes, tokens, snapshots
//   node       an agent: reads, and writes only its own Node and the status of the
//              Allocations placed on its node
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "apis/error.h"

namespace mentat {

enum class Role { kReadOnly, kOperator, kAdmin, kNode };
std::string RoleName(Role r);
Result<Role> ParseRole(const std::string& s);

struct Principal {
  std::string name;
  Role role = Role::kReadOnly;
  std::string node;  // for Role::kNode: the node this token speaks for
};

class TokenStore {
 public:
  // Loads `path`, or starts empty when it does not exist yet. A malformed file is an error
  // naming the file and line.
  static Result<std::unique_ptr<TokenStore>> Open(const std::string& path);

  // The principal a bearer token belongs to; nullopt for an unknown token.
  std::optional<Principal> Authenticate(const std::string& token) const;
  // Makes a token, stores its hash (the file is rewritten atomically), and returns the token:
  // the only time it is ever available.
  Result<std::string> Create(const std::string& name, Role role, const std::string& node = "");
  Status Remove(const std::string& name);
  std::vector<Principal> List() const;
  bool HasAdmin() const;

 private:
  struct Entry {
    Principal who;
    std::string sha256;  // hex
  };
  explicit TokenStore(std::string path) : path_(std::move(path)) {}
  Status SaveLocked() const;

  std::string path_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;  // by name
};

// Writes a secret (a token file) whole, mode 0600, synced, renamed into place: a crash leaves
// the old file or the new one.
Status WriteSecretFile(const std::string& path, const std::string& text);

}  // namespace mentat
