// SHA-256 on OpenSSL, in the form content-addressed artifacts are named by: "sha256:<hex>".
// Incremental, for bodies that stream through (uploads, downloads, archives being written).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace mentat {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t n);
  // "sha256:" and the 64 lower-case hex digits of all that was given. Call it once.
  std::string Finish();

  // Finish() of `bytes` at once: "sha256:<hex>".
  static std::string Of(std::string_view bytes);

 private:
  evp_md_ctx_st* ctx_;
};

// The 64 lower-case hex digits of the SHA-256 of `bytes` alone, without "sha256:": how a token's
// hash, a snapshot's checksum and a base recipe's hash are written.
std::string Sha256Hex(std::string_view bytes);

}  // namespace mentat
