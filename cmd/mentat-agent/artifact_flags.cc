#include "cmd/mentat-agent/artifact_flags.h"

#include <tuple>

#include "apis/object.h"

namespace mentat {

void AddArtifactFlags(CLI::App& app, ArtifactFlags& f) {
  constexpr int64_t kMaxMb = int64_t{1} << 30;  // 1 PiB: a sanity bound, not a policy
  app.add_option(kUnpackMaxMbFlag, f.unpack_max_mb,
                 "the most file data one app rootfs artifact may unpack to on this node, in MiB")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, kMaxMb));
  app.add_option(kUnpackMaxEntriesFlag, f.unpack_max_entries,
                 "the most files, directories and symlinks one artifact may unpack to")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  app.add_option(kUnpackMaxRatioFlag, f.unpack_max_ratio,
                 "refuse an artifact that unpacks to more than this many times its archive's "
                 "size (past 64 MiB): a decompression bomb; 0 turns the check off")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  app.add_option(kUnpackedBudgetMbFlag, f.budget_mb,
                 "the most file data all unpacked artifacts of this node may take together, in "
                 "MiB (unused ones are removed to make room); 0: 20 GiB or a quarter of the "
                 "data dir's filesystem, whichever is smaller")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, kMaxMb));
  app.add_option(kUnpackedBudgetEntriesFlag, f.budget_entries,
                 "the most entries all unpacked artifacts may have together; 0: a million or "
                 "a quarter of the filesystem's inodes, whichever is smaller")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  app.add_option(kUnpackedGcGraceFlag, f.gc_grace,
                 "an unpacked artifact no task uses is removed once unused this long (e.g. 1h)")
      ->capture_default_str();
  app.add_option("--unpacked-gc-interval", f.gc_interval,
                 "how often unpacked artifacts no task uses are looked for (e.g. 1m)")
      ->capture_default_str();
}

Result<ArtifactLimits> ArtifactLimitsFromFlags(const ArtifactFlags& f) {
  ArtifactLimits l;
  l.unpack.max_bytes = static_cast<uint64_t>(f.unpack_max_mb) << 20;
  l.unpack.max_entries = static_cast<uint64_t>(f.unpack_max_entries);
  l.unpack.max_ratio = static_cast<uint64_t>(f.unpack_max_ratio);
  l.budget_bytes = static_cast<uint64_t>(f.budget_mb) << 20;
  l.budget_entries = static_cast<uint64_t>(f.budget_entries);
  for (auto [flag, text, out] : {std::tuple{kUnpackedGcGraceFlag, &f.gc_grace, &l.gc_grace},
                                 std::tuple{"--unpacked-gc-interval", &f.gc_interval,
                                            &l.gc_interval}}) {
    auto d = ParseDuration(*text);
    if (!d || d->count() < 0 || (out == &l.gc_interval && d->count() < 1000)) {
      return InvalidArgument(std::string(flag) + ": \"" + *text +
                             "\" is not a duration such as 30s or 1h (an interval: 1s at least)");
    }
    *out = std::chrono::duration_cast<std::chrono::seconds>(*d);
  }
  return l;
}

}  // namespace mentat
