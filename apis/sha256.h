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

  static std::string Of(std::string_view bytes);

 private:
  evp_md_ctx_st* ctx_;
};

}  // namespace mentat
