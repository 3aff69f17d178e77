// Packing an app directory into an artifact (`mt apply` with a relative rootfs): a tar (pax)
// stream, zstd-compressed (gzip where libarchive has no zstd), whose bytes depend only on the
// tree's names, contents, permission bits and link targets. So the same tree always packs to the
// same digest, on any machine and after any rebuild that changed nothing.
#pragma once

#include <cstdint>
#include <string>

#include "apis/error.h"

namespace mentat {

struct PackedTree {
  std::string digest;  // "sha256:<hex>" of the archive's bytes
  uint64_t bytes = 0;  // size of the archive
  uint64_t entries = 0;
};

// Packs the tree under `dir` into the file `archive` (created or truncated). Entries go in
// byte order of their paths; owners are uid/gid 0 with no names; times are the epoch; modes
// keep their permission bits (no setuid, setgid or sticky); symlinks stay symlinks; a hard
// link is packed as a copy. Anything but files, directories and symlinks (a device node, a
// socket, a FIFO) is an error naming it, and so is a file that changes while it is read.
Result<PackedTree> PackDirectory(const std::string& dir, const std::string& archive);

}  // namespace mentat
