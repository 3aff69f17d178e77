#include "apis/agent_key.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

namespace mentat {
namespace {

std::string Hex(const unsigned char* b, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out += digits[b[i] >> 4];
    out += digits[b[i] & 15];
  }
  return out;
}

}  // namespace

std::string HmacSha256Hex(std::string_view key, std::string_view message) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), md, &len);
  return Hex(md, len);
}

std::string AgentKeyFor(std::string_view server_secret, std::string_view node) {
  return HmacSha256Hex(server_secret, "agent:" + std::string(node));
}

std::string AgentProof(std::string_view key, std::string_view challenge) {
  return HmacSha256Hex(key, "proof:" + std::string(challenge));
}

std::string RandomHex(size_t n) {
  std::string raw(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(n)) != 1) return "";
  return Hex(reinterpret_cast<const unsigned char*>(raw.data()), n);
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // The length is no secret (every key and proof is 64 hex digits); the bytes are.
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace mentat
