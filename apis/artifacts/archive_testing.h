// Archives for tests of the agent's unpacking and artifact cache, written here with
// libarchive: hostile entries, decompression bombs of zeros, incompressible files, and an
// in-memory "server" that serves archive files by their digest.
#pragma once

#include <archive_entry.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "apis/error.h"

namespace mentat {

struct ArchiveMember {
  std::string name;
  mode_t type = AE_IFREG;
  std::string content;
  mode_t perm = 0644;
  std::string link;       // symlink target
  std::string hardlink;   // hard link target
  int64_t declared = -1;  // size in the header, when it lies
};

// A fresh, empty directory for the running test, named after it, under TEST_TMPDIR.
std::filesystem::path FreshTestDir();

enum class ArchiveFilter { kNone, kGzip, kZstd };

// A pax tar of `entries`, compressed with `filter`. False (with a gtest failure) on error.
bool WriteTestArchive(const std::string& path, const std::vector<ArchiveMember>& entries,
                      ArchiveFilter filter = ArchiveFilter::kGzip);

// `files` regular files "zeros-N" of `file_bytes` zeros each: a few KiB of zstd per GiB.
bool WriteZeroBomb(const std::string& path, uint64_t file_bytes, int files = 1,
                   ArchiveFilter filter = ArchiveFilter::kZstd);

// Bytes that do not compress.
std::string IncompressibleBytes(size_t n, uint32_t seed);

// Serves archive files by their sha256 digest, as the server's GET /v1/artifacts/DIGEST does.
class ArchiveServer {
 public:
  // Adds the file at `path`; returns its digest.
  std::string Add(const std::string& path);
  // Calls to Serve wait in `hook` (if set) before sending anything: a test holds a fetch there.
  void set_hook(std::function<void(const std::string& digest)> hook) { hook_ = std::move(hook); }
  Status Serve(const std::string& digest, const std::function<bool(const char*, size_t)>& on_data);
  int served() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string> files_;
  std::function<void(const std::string&)> hook_;
  int served_ = 0;
};

}  // namespace mentat
