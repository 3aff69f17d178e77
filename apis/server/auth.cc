#include "apis/server/auth.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <yaml-cpp/yaml.h>

#include "apis/service.h"
#include "apis/sha256.h"

namespace mentat {
namespace {

std::string Hex(const unsigned char* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(d[p[i] >> 4]);
    out.push_back(d[p[i] & 15]);
  }
  return out;
}

}  // namespace

std::string RoleName(Role r) {
  switch (r) {
    case Role::kReadOnly: return "read-only";
    case Role::kOperator: return "operator";
    case Role::kAdmin: return "admin";
    case Role::kNode: return "node";
  }
  return "?";
}

Result<Role> ParseRole(const std::string& s) {
  if (s == "read-only") return Role::kReadOnly;
  if (s == "operator") return Role::kOperator;
  if (s == "admin") return Role::kAdmin;
  if (s == "node") return Role::kNode;
  return InvalidArgument("unknown role \"" + s + "\"; one of read-only, operator, admin, node");
}

Result<std::unique_ptr<TokenStore>> TokenStore::Open(const std::string& path) {
  std::unique_ptr<TokenStore> store(new TokenStore(path));
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return store;
  auto fail = [&](const YAML::Mark& m, const std::string& msg) {
    return MakeError(Code::kInvalidArgument, "tokens file " + path + ": " + msg,
                     {{"tokens", m.line + 1, m.column + 1, msg}});
  };
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    return fail(e.mark, e.msg);
  }
  if (!root || root.IsNull()) return store;
  if (!root.IsMap() || !root["tokens"] || !root["tokens"].IsSequence()) {
    return fail(root.Mark(), "expected a map with a list `tokens:`");
  }
  for (const auto& t : root["tokens"]) {
    if (!t.IsMap() || !t["name"] || !t["role"] || !t["sha256"]) {
      return fail(t.Mark(), "each token needs name, role and sha256");
    }
    Entry e;
    e.who.name = t["name"].as<std::string>();
    auto role = ParseRole(t["role"].as<std::string>());
    if (!role) return fail(t["role"].Mark(), role.error().message());
    e.who.role = *role;
    if (t["node"]) e.who.node = t["node"].as<std::string>();
    if (e.who.role == Role::kNode && e.who.node.empty()) {
      return fail(t.Mark(), "a node token needs node: NAME");
    }
    e.sha256 = t["sha256"].as<std::string>();
    if (e.sha256.size() != 64) return fail(t["sha256"].Mark(), "sha256 must be 64 hex digits");
    if (!store->entries_.emplace(e.who.name, e).second) {
      return fail(t.Mark(), "token name \"" + e.who.name + "\" appears twice");
    }
  }
  return store;
}

std::optional<Principal> TokenStore::Authenticate(const std::string& token) const {
  if (token.empty()) return std::nullopt;
  std::string h = Sha256Hex(token);
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, e] : entries_) {
    if (CRYPTO_memcmp(e.sha256.data(), h.data(), h.size()) == 0) return e.who;
  }
  return std::nullopt;
}

Result<std::string> TokenStore::Create(const std::string& name, Role role, const std::string& node) {
  if (!IsDnsLabel(name)) {
    return MakeError(Code::kInvalidArgument, "invalid token name",
                     {{"name", 0, 0, "must be a DNS label (a-z, 0-9, '-'), got \"" + name + "\""}});
  }
  if (role == Role::kNode && !IsDnsLabel(node)) {
    return MakeError(Code::kInvalidArgument, "a node token needs its node",
                     {{"node", 0, 0, "required for role node, a DNS label"}});
  }
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof(raw)) != 1) return Internal("no randomness for a token");
  std::string token = "mt_" + Hex(raw, sizeof(raw));
  std::lock_guard<std::mutex> lock(mu_);
  if (entries_.count(name)) {
    return MakeError(Code::kAlreadyExists, "a token named \"" + name + "\" exists already");
  }
  entries_[name] = Entry{{name, role, role == Role::kNode ? node : ""}, Sha256Hex(token)};
  if (auto st = SaveLocked(); !st) {
    entries_.erase(name);
    return std::unexpected(st.error());
  }
  return token;
}

Status TokenStore::Remove(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end()) return NotFound("no token named \"" + name + "\"");
  Entry saved = it->second;
  entries_.erase(it);
  if (auto st = SaveLocked(); !st) {
    entries_[name] = saved;
    return st;
  }
  return {};
}

std::vector<Principal> TokenStore::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Principal> out;
  for (const auto& [name, e] : entries_) out.push_back(e.who);
  return out;
}

bool TokenStore::HasAdmin() const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, e] : entries_) {
    if (e.who.role == Role::kAdmin) return true;
  }
  return false;
}

Status TokenStore::SaveLocked() const {
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "tokens" << YAML::Value << YAML::BeginSeq;
  for (const auto& [name, e] : entries_) {
    out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << name << YAML::Key << "role"
        << YAML::Value << RoleName(e.who.role);
    if (!e.who.node.empty()) out << YAML::Key << "node" << YAML::Value << e.who.node;
    out << YAML::Key << "sha256" << YAML::Value << e.sha256 << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
  std::string text = "# Mentat API tokens: SHA-256 hashes only. Managed by the server.\n" +
                     std::string(out.c_str()) + "\n";
  return WriteSecretFile(path_, text);
}

Status WriteSecretFile(const std::string& path, const std::string& text) {
  // Written whole to a temp file, synced, then renamed over: a crash leaves the old file or
  // the new one, never half of either.
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Internal("writing " + tmp + ": " + strerror(errno));
  bool ok = ::fchmod(fd, 0600) == 0 &&
            ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Internal("writing " + path + ": " + strerror(errno));
  }
  return {};
}

}  // namespace mentat
