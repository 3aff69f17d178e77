#include "apis/artifacts/rootfs_entries.h"

#include <archive_entry.h>
#include <sys/stat.h>

namespace mentat {

static_assert(AE_IFMT == S_IFMT && AE_IFREG == S_IFREG && AE_IFDIR == S_IFDIR &&
                  AE_IFLNK == S_IFLNK && AE_IFCHR == S_IFCHR && AE_IFBLK == S_IFBLK &&
                  AE_IFIFO == S_IFIFO && AE_IFSOCK == S_IFSOCK,
              "libarchive's file types are the kernel's");

namespace {

const char* TypeName(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFCHR:
      return "a character device";
    case S_IFBLK:
      return "a block device";
    case S_IFIFO:
      return "a FIFO";
    case S_IFSOCK:
      return "a socket";
    default:
      return "of an unknown type";
  }
}

}  // namespace

bool IsRootfsEntryType(mode_t mode) {
  mode_t type = mode & S_IFMT;
  return type == S_IFREG || type == S_IFDIR || type == S_IFLNK;
}

std::unexpected<Error> NotARootfsEntry(const std::string& what, mode_t mode) {
  return InvalidArgument(what + " is " + TypeName(mode) +
                         ": an app rootfs holds only files, directories and symlinks");
}

}  // namespace mentat
