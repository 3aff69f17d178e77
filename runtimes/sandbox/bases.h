// The sandbox's pre-built bases (node22, python312, java21, static): root filesystems built
// once on each host from the recipes compiled in from runtimes/sandbox/bases/, then shared read-only by
// every sandbox as the overlayfs lowerdir under the application's files. docs/sandbox.md.
//
// On disk, under a bases directory (the agent's <data-dir>/bases):
//   <name>/.lock               flock'ed while a build of <name> is checked or made
//   <name>/current             symlink to the build in use
//   <name>/build-<id>/base.json  name, version, built_at, recipe_hash, size_bytes, host_packages
//   <name>/build-<id>/rootfs/  the root filesystem (BaseInfo::rootfs)
//   <name>/.tmp-<id>/          a build in progress; one left by a crash is removed next time
// A rebuild makes a new build-<id> and switches `current` atomically; it keeps the build it
// replaced (sandboxes started on it still have their lowerdir) and deletes older ones.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "apis/error.h"
#include "runtimes/sandbox/base_recipe.h"
#include "runtimes/sandbox/dpkg_status.h"

namespace mentat {

// Where bases live by default: the agent's default --data-dir plus /bases.
inline constexpr const char* kDefaultBasesDir = "/var/lib/mentat/agent/bases";

struct BaseInfo {
  std::string name;
  std::string version;      // what the base's own runtime says, e.g. "Python 3.11.2"
  std::string rootfs;       // absolute dir, the overlay lowerdir
  std::string built_at;     // RFC 3339 UTC
  std::string recipe_hash;  // sha256 of the recipe (and of the builder's version)
  int64_t size_bytes = 0;   // bytes in regular files, each inode once
};

// Builds `name` into <bases_dir>/<name>/ if it is missing or its recipe changed (or the host's
// version of one of its packages did); otherwise returns the cached one. Safe against
// concurrent callers (flock) and crashes (build into a temp dir, rename into place).
// kNotFound for an unknown base name (the message lists the known ones, with a did-you-mean);
// kFailedPrecondition naming the missing Debian package(s) and the apt-get command when the
// host lacks them.
Result<BaseInfo> EnsureBase(const std::string& bases_dir, const std::string& name);

// The bases built in `bases_dir`, by name, with their versions. A missing dir: none.
Result<std::vector<BaseInfo>> ListBases(const std::string& bases_dir);

// The names of the compiled-in recipes, sorted.
std::vector<std::string> KnownBases();

struct EnsureBaseOptions {
  bool force_rebuild = false;                 // build even when the current one is up to date
  std::string dpkg_status = kDpkgStatusPath;  // where to read the installed packages from
};

// EnsureBase for a given recipe (the compiled-in one, or a test's).
Result<BaseInfo> EnsureBaseFromRecipe(const std::string& bases_dir, const BaseRecipe& recipe,
                                      const EnsureBaseOptions& options = {});

}  // namespace mentat
