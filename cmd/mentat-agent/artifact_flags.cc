#include "cmd/mentat-agent/artifact_flags.h"

#include <tuple>

#include "apis/object.h"

namespace mentat {

namespace {

constexpr int64_t kMaxMb = int64_t{1} << 30;  // 1 PiB: a sanity bound, not a policy
constexpr int64_t kMaxCount = int64_t{1} << 40;

// An integer flag shown with its default in --help and refused outside [lo, hi].
void AddBounded(CLI::App& app, const char* flag, int64_t& value, const std::string& help,
                int64_t lo, int64_t hi) {
  app.add_option(flag, value, help)->capture_default_str()->check(CLI::Range(lo, hi));
}

}  // namespace

void AddArtifactFlags(CLI::App& app, ArtifactFlags& f) {
  AddBounded(app, kUnpackMaxMbFlag, f.unpack_max_mb,
             "the most file data one app rootfs artifact may unpack to on this node, in MiB", 1,
             kMaxMb);
  AddBounded(app, kUnpackMaxEntriesFlag, f.unpack_max_entries,
             "the most files, directories and symlinks one artifact may unpack to", 1, kMaxCount);
  AddBounded(app, kUnpackMaxRatioFlag, f.unpack_max_ratio,
             "refuse an artifact that unpacks to more than this many times its archive's size "
             "(past 64 MiB): a decompression bomb; 0 turns the check off",
             0, kMaxCount);
  AddBounded(app, kUnpackedBudgetMbFlag, f.budget_mb,
             "the most file data all unpacked artifacts of this node may take together, in MiB "
             "(unused ones are removed to make room); 0: 20 GiB or a quarter of the data dir's "
             "filesystem, whichever is smaller",
             0, kMaxMb);
  AddBounded(app, kUnpackedBudgetEntriesFlag, f.budget_entries,
             "the most entries all unpacked artifacts may have together; 0: a million or a "
             "quarter of the filesystem's inodes, whichever is smaller",
             0, kMaxCount);
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
  for (auto [flag, text, out] :
       {std::tuple{kUnpackedGcGraceFlag, &f.gc_grace, &l.gc_grace},
        std::tuple{"--unpacked-gc-interval", &f.gc_interval, &l.gc_interval}}) {
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
