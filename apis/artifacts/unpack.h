// Unpacking one app rootfs archive into a directory, safely and within limits: what a tar may
// hold (no escapes, devices or hard links), how much it may unpack to (bytes, entries and the
// compression ratio a bomb gives away), and a hook through which the node's budget for all
// unpacked trees is drawn entry by entry. Also the removal of what unpacking made.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "apis/error.h"

namespace mentat {

// The agent flags that set the limits below: errors name them, so an operator knows what to
// change (cmd/mentat-agent/artifact_flags.h registers them).
inline constexpr char kUnpackMaxMbFlag[] = "--unpack-max-mb";
inline constexpr char kUnpackMaxEntriesFlag[] = "--unpack-max-entries";
inline constexpr char kUnpackMaxRatioFlag[] = "--unpack-max-ratio";

// Limits on what one artifact may unpack to: a small archive must not fill the node's disk.
struct UnpackLimits {
  // File data (the sizes of regular files, as declared and as written): 2 GiB.
  uint64_t max_bytes = uint64_t{2} << 30;
  // Entries of every type: files, directories and symlinks.
  uint64_t max_entries = 100000;
  // A bomb gives itself away by its ratio: refused as soon as its file data, or the tar stream
  // decompressed so far, exceeds both max_ratio times the archive's size and ratio_floor.
  // 0 turns the check off. The floor keeps small, very compressible apps (text, zeros) legal.
  uint64_t max_ratio = 100;
  uint64_t ratio_floor = uint64_t{64} << 20;
};

// What an archive unpacked to, counted as UnpackLimits counts.
struct UnpackedSize {
  uint64_t bytes = 0;
  uint64_t entries = 0;
};

// Called before each entry is written with what it adds (its file data, one entry); an error
// refuses the archive with that error. The node's budget for all trees is drawn through it.
using UnpackReserve = std::function<Status(uint64_t bytes, uint64_t entries)>;

// Unpacks the tar archive at `archive` (compressed as libarchive reads: zstd, gzip, ...) into
// `dest`, an existing empty directory. The whole archive is refused, with an error naming the
// entry or the limit and its flag, for: an absolute path or one with "..", a write through a
// symlink, a device node, FIFO, socket or hard link, an entry holding more than its header
// declares, or more than `limits` allow. A limit is checked on each entry's header, before
// its data is written, so a refused bomb writes nothing past the limit. Owners are not
// restored (all belongs to the agent's user), and setuid, setgid and sticky bits are dropped.
// Limits refuse with kInvalidArgument (the content will never fit); `reserve`'s errors come
// back as they are. On error `dest` may hold part of the tree: the caller removes it
// (RemoveTree).
Result<UnpackedSize> UnpackArchive(const std::string& archive, const std::string& dest,
                                   const UnpackLimits& limits = {},
                                   const UnpackReserve& reserve = nullptr);

// Removes `path` and everything under it, never following symlinks. Directories an archive
// left without write or search permission (mode 0500, 0000) are opened up first, so that an
// agent not running as root can still remove what it unpacked.
Status RemoveTree(const std::string& path);

// The file data and entries of an unpacked tree on disk, counted as UnpackArchive counts
// (the tree's root itself is not an entry). Symlinks are not followed.
Result<UnpackedSize> MeasureTree(const std::string& path);

}  // namespace mentat
