#include "store/raft/sim/kv_state_machine.h"

#include <charconv>
#include <vector>

namespace mentat::raft::sim {
namespace {

constexpr char kSep = '\x1f';

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (size_t at = 0;;) {
    size_t end = s.find(sep, at);
    out.push_back(s.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at));
    if (end == std::string_view::npos) return out;
    at = end + 1;
  }
}

template <typename T>
bool Number(std::string_view s, T& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

std::string Join(std::initializer_list<std::string> fields) {
  std::string out;
  for (const auto& f : fields) {
    if (!out.empty()) out += kSep;
    out += f;
  }
  return out;
}

}  // namespace

std::string EncodeCommand(const KvCommand& c) {
  return Join({"w", std::to_string(c.client), std::to_string(c.seq),
               std::to_string(static_cast<int>(c.input.op)), c.input.key, c.input.value,
               std::to_string(c.input.expected_version)});
}

std::optional<KvCommand> DecodeCommand(std::string_view data) {
  auto f = Split(data, kSep);
  KvCommand c;
  int op = 0;
  if (f.size() != 7 || f[0] != "w" || !Number(f[1], c.client) || !Number(f[2], c.seq) ||
      !Number(f[3], op) || !Number(f[6], c.input.expected_version)) {
    return std::nullopt;
  }
  c.input.op = static_cast<testing::KvOp>(op);
  c.input.key = f[4];
  c.input.value = f[5];
  return c;
}

KvOutput KvStateMachine::Apply(const KvCommand& c) {
  auto& session = sessions_[c.client];
  if (deduplicate_ && c.seq <= session.seq) return session.answer;
  auto [next, answer] =
      testing::ApplyKv(Read(c.input.key).ok ? keys_[c.input.key] : KvState{}, c.input);
  if (next.exists) {
    keys_[c.input.key] = next;
  } else {
    keys_.erase(c.input.key);
  }
  session = {c.seq, answer};
  return answer;
}

KvOutput KvStateMachine::Read(const std::string& key) const {
  auto it = keys_.find(key);
  if (it == keys_.end()) return {false, "", 0};
  return {true, it->second.value, it->second.version};
}

std::string KvStateMachine::Serialize() const {
  std::string out;
  for (const auto& [key, s] : keys_) {
    out += Join({"k", key, s.value, std::to_string(s.version)}) + "\n";
  }
  for (const auto& [client, s] : sessions_) {
    out += Join({"s", std::to_string(client), std::to_string(s.seq), s.answer.ok ? "1" : "0",
                 s.answer.value, std::to_string(s.answer.version)}) +
           "\n";
  }
  return out;
}

std::optional<KvStateMachine> KvStateMachine::Restore(std::string_view bytes, bool deduplicate) {
  KvStateMachine m(deduplicate);
  for (std::string_view line : Split(bytes, '\n')) {
    if (line.empty()) continue;
    auto f = Split(line, kSep);
    if (f[0] == "k" && f.size() == 4) {
      KvState s{true, std::string(f[2]), 0};
      if (!Number(f[3], s.version)) return std::nullopt;
      m.keys_[std::string(f[1])] = s;
    } else if (f[0] == "s" && f.size() == 6) {
      int client = 0;
      Session s;
      if (!Number(f[1], client) || !Number(f[2], s.seq) || !Number(f[5], s.answer.version)) {
        return std::nullopt;
      }
      s.answer.ok = f[3] == "1";
      s.answer.value = f[4];
      m.sessions_[client] = s;
    } else {
      return std::nullopt;
    }
  }
  return m;
}

uint64_t KvStateMachine::Fingerprint() const { return Fnv1a(Serialize()); }

uint64_t Fnv1a(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace mentat::raft::sim
