// A relative rootfs (`rootfs: ./app`, at top level, under config or under spec) is the app's
// build output next to the manifest, which the server cannot see. Before the manifests are
// sent, mt packs each such directory (apis/artifacts/pack.h), uploads it as a content-addressed artifact
// (HEAD first: an artifact the server has is never sent again), and rewrites the rootfs in the
// manifest's text to the artifact's digest, in place, so every line keeps its number.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "apis/client.h"
#include "apis/error.h"
#include "cmd/mt/manifests.h"

namespace mentat::mt {

enum class RootfsMode {
  kUpload,       // mt apply: pack, upload what the server lacks, rewrite
  kPackOnly,     // mt apply --dry-run, mt diff: pack and rewrite, upload nothing
  kPlaceholder,  // mt delete -f: only names matter; rewrite to a digest of zeros, pack nothing
};

struct PackedRootfs {
  std::string source;  // the manifest file
  int line = 0;        // of its rootfs
  std::string rootfs;  // as written, e.g. "./app"
  std::string digest;
  uint64_t bytes = 0;      // the packed archive's size
  bool uploaded = false;   // sent now
  bool on_server = false;  // the server had it already
};

// Rewrites the texts of `sources` in place and returns what it packed. Errors name the file,
// line and field of the rootfs: a `..` in it, a path that is not a directory, a tree that
// cannot be packed, an archive over the server's limit. Progress lines go to `progress`.
// `client` may be null for kPackOnly and kPlaceholder (then nothing is asked of the server).
Result<std::vector<PackedRootfs>> ResolveAppRootfs(std::vector<Source>& sources, RootfsMode mode,
                                                   ApiClient* client, std::ostream& progress);

}  // namespace mentat::mt
