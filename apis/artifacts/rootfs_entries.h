// What an app rootfs may hold, one rule for packing and unpacking alike: files, directories
// and symlinks, nothing else. The error names the entry and what it is instead.
#pragma once

#include <sys/types.h>

#include <string>

#include "apis/error.h"

namespace mentat {

// True for a regular file, a directory or a symlink. `mode` is an st_mode or a libarchive
// file type (AE_IF* are the S_IF* values); only its type bits count.
bool IsRootfsEntryType(mode_t mode);

// kInvalidArgument: "WHAT is a FIFO: an app rootfs holds only files, directories and
// symlinks" (a character device, a block device, a socket; else "of an unknown type").
std::unexpected<Error> NotARootfsEntry(const std::string& what, mode_t mode);

}  // namespace mentat
