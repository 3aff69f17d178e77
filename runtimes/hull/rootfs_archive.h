// A .tar.gz root filesystem, extracted once into hull's cache with libarchive and shared,
// read-only, by every container made from it (each gets an overlay layer of its own). Safe by
// construction: an entry that is absolute or climbs with ".." (names and hard-link targets)
// refuses the whole archive; device nodes are skipped; setuid and setgid bits are dropped;
// nothing is written through a symlink.
#pragma once

#include <string>

#include "apis/error.h"

namespace mentat::hull {

// Extracts `archive` into `dest` (which must not exist; created). kInvalidArgument naming the
// entry for an unsafe archive, kInternal for I/O errors. `dest` is removed on failure.
Status ExtractRootfsArchive(const std::string& archive, const std::string& dest);

// The cached extraction of `archive` under `cache_dir`: keyed by the archive's path, size,
// mtime and inode; extracted on first use into a temp directory and renamed into place, under
// an flock so concurrent runs extract once. Returns the directory.
Result<std::string> CachedRootfs(const std::string& archive, const std::string& cache_dir);

}  // namespace mentat::hull
