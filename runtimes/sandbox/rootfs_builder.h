// Assembles a root filesystem from the host's own files, keeping the host's layout: a host path
// lands at the same path in the rootfs, every symlink met on the way (/lib -> usr/lib,
// /etc/alternatives/...) is recreated, and files are hard-linked when the rootfs is on the same
// filesystem (copied otherwise). ELF files bring their shared libraries and dynamic loader.
// Everything it creates is resolved inside the rootfs (openat2 RESOLVE_IN_ROOT): an absolute
// symlink in the rootfs never leads a write out to the host.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "apis/error.h"

namespace mentat {

class RootfsBuilder {
 public:
  struct Stats {
    int64_t linked = 0;  // files hard-linked from the host
    int64_t copied = 0;  // files copied (another filesystem, or linking not permitted)
  };

  // `root` must be an existing, empty directory.
  static Result<std::unique_ptr<RootfsBuilder>> Create(const std::string& root);
  ~RootfsBuilder();
  RootfsBuilder(const RootfsBuilder&) = delete;
  RootfsBuilder& operator=(const RootfsBuilder&) = delete;

  // Makes `host_path` exist in the rootfs as on the host and links or copies the file it names
  // (a directory: created empty). kNotFound when the host has no such path.
  Status AddFile(const std::string& host_path);
  // The directory `host_path` and everything below it, except what `exclude` matches: a
  // pattern without '/' matches an entry's name, one with '/' its path relative to the tree
  // (fnmatch). A symlink in the tree that leads out of it brings its target along.
  Status AddTree(const std::string& host_path, const std::vector<std::string>& exclude);
  // The shared libraries and loaders of every ELF file added so far, as the loader resolves
  // them on this host. A library in a tree that is found only next to its siblings (libjvm for
  // the JVM's libraries) is resolved with the tree's library directories on the search path.
  Status AddSharedLibraries();

  // A symlink at `path` (replacing a symlink already there). Its parent directories are
  // mirrored from the host when the host has them, else created.
  Status AddSymlink(const std::string& path, const std::string& target);
  // `path` and its parents (0755), with `mode` for `path` itself.
  Status AddDirectory(const std::string& path, mode_t mode);
  // A new file with `content` (whatever was at `path` is unlinked first, never written through:
  // it may be a hard link to a host file).
  Status WriteFile(const std::string& path, const std::string& content, mode_t mode);
  // True when `path` exists in the rootfs (without following a final symlink).
  bool Exists(const std::string& path) const;

  // Bytes in the rootfs's regular files, each inode once.
  Result<int64_t> SizeBytes() const;
  const Stats& stats() const { return stats_; }
  const std::string& root() const { return root_; }

 private:
  struct ElfFile {
    std::string host_path;
    std::string interpreter;
    std::string tree;  // the tree it came with, "" for a file
  };

  RootfsBuilder(std::string root, int root_fd) : root_(std::move(root)), root_fd_(root_fd) {}

  // Walks `host_path` from "/", mirroring each component; with `whole_tree`, a directory at
  // the end is copied with its contents.
  Status Mirror(const std::string& host_path, bool whole_tree,
                const std::vector<std::string>& exclude, const std::string& tree);
  Status CopyTree(const std::string& host_dir, const std::string& rel,
                  const std::vector<std::string>& exclude, const std::string& tree);
  Status LinkOrCopy(const std::string& host_path, const struct stat& st, int dir_fd,
                    const std::string& name, const std::string& tree);
  // An O_PATH descriptor of directory `path` in the rootfs. `follow_links`: resolve symlinks
  // inside the rootfs; otherwise any symlink on the path is an error.
  Result<int> OpenDir(const std::string& path, bool follow_links) const;
  Status MakeParents(const std::string& path);

  std::string root_;
  int root_fd_;
  Stats stats_;
  std::vector<ElfFile> elf_files_;
  std::set<std::string> trees_done_;  // canonical host directories already copied whole
};

}  // namespace mentat
