// How mentat-server and a node's agent know each other (docs/security.md, "Agents"). The server
// keeps one random secret; a node's agent key is HMAC-SHA256(secret, "agent:" + node), which the
// agent fetches with its node token and then accepts as the only credential on its endpoints.
// In turn the agent proves it holds the key on every answer: the server sends a random
// challenge, the agent answers with HMAC-SHA256(key, "proof:" + challenge).
#pragma once

#include <string>
#include <string_view>

namespace mentat {

// The request header carrying the server's challenge, and the answer header with the proof.
inline constexpr const char* kAgentChallengeHeader = "X-Mentat-Agent-Challenge";
inline constexpr const char* kAgentProofHeader = "X-Mentat-Agent-Proof";

// Lower-case hex of HMAC-SHA256(key, message).
std::string HmacSha256Hex(std::string_view key, std::string_view message);
// The key of `node`'s agent, from the server's secret.
std::string AgentKeyFor(std::string_view server_secret, std::string_view node);
// What the agent holding `key` answers to `challenge`.
std::string AgentProof(std::string_view key, std::string_view challenge);
// `n` random bytes as lower-case hex (2n digits), from the kernel; "" if it has none to give.
std::string RandomHex(size_t n);
// Equality that takes the same time wherever the two differ (secrets from a caller).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace mentat
