// The agent's artifact cache on a real filesystem, with archives written here by libarchive
// and served by digest: issue 17's zstd bomb and too many entries are refused, naming the
// artifact, the limit and the flag, leaving nothing behind and not fetched twice; the node
// budget removes an unused tree to make room and refuses clearly when trees in use fill it;
// garbage collection never removes a tree in use, leased or not known to be unused, removes
// an unused one once its grace is over (across a restart too), and removes what a crash left
// under tmp/ but not a fetch in progress.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "apis/artifacts/archive_testing.h"
#include "runtimes/agent/artifacts.h"

namespace mentat {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

bool WaitFor(const std::function<bool()>& cond, std::chrono::seconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(10ms);  // polling a condition, within a deadline
  }
  return true;
}

bool Has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class ArtifactCacheTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = FreshTestDir(); }

  std::unique_ptr<ArtifactCache> Open(ArtifactLimits limits) {
    ArtifactCacheOptions o;
    o.dir = Dir();
    o.source = [this](const std::string& digest, const auto& on_data) {
      return server_.Serve(digest, on_data);
    };
    o.limits = limits;
    o.in_use = [this]() -> std::optional<std::set<std::string>> {
      std::lock_guard<std::mutex> lock(mu_);
      if (!known_) return std::nullopt;
      return in_use_;
    };
    o.now = [this] {
      std::lock_guard<std::mutex> lock(mu_);
      return now_;
    };
    auto cache = ArtifactCache::Create(std::move(o));
    EXPECT_TRUE(cache) << cache.error().message();
    return cache ? std::move(*cache) : nullptr;
  }
  // An artifact of one file of `bytes` that do not compress, uncompressed, served by digest.
  std::string AddFile(const std::string& name, size_t bytes) {
    std::string path = (root_ / (name + ".tar")).string();
    EXPECT_TRUE(WriteTestArchive(path, {{name, AE_IFREG, IncompressibleBytes(bytes, ++seed_)}},
                                 ArchiveFilter::kNone));
    return server_.Add(path);
  }
  std::string Dir() const { return (root_ / "cache").string(); }
  bool HasTree(const std::string& digest) const {
    return fs::exists(Dir() + "/sha256/" + digest.substr(7) + "/app");
  }
  size_t InTmp() const {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(Dir() + "/tmp")) ++n;
    return n;
  }
  uint64_t FileBytesInCache() const {
    uint64_t n = 0;
    for (const auto& e : fs::recursive_directory_iterator(Dir())) {
      if (e.is_regular_file()) n += e.file_size();
    }
    return n;
  }
  void SetInUse(std::set<std::string> digests) {
    std::lock_guard<std::mutex> lock(mu_);
    in_use_ = std::move(digests);
  }
  void SetKnown(bool known) {
    std::lock_guard<std::mutex> lock(mu_);
    known_ = known;
  }
  void Advance(std::chrono::seconds d) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += d;
  }
  static std::vector<std::string> Removed(const GcReport& r) {
    std::vector<std::string> out;
    for (const auto& v : r.trees) out.push_back(v.digest);
    return out;
  }

  fs::path root_;
  ArchiveServer server_;
  uint32_t seed_ = 0;
  std::mutex mu_;
  std::set<std::string> in_use_;
  bool known_ = true;
  std::chrono::system_clock::time_point now_ = std::chrono::system_clock::now();
};

// Issue 17: a 33 KB zstd artifact that unpacks to 1 GiB. With the agent's defaults it is
// refused within seconds, with nothing written, and the task's error says which artifact,
// which limit and which flag.
TEST_F(ArtifactCacheTest, TheFindingsBombIsRefusedNamingTheArtifactTheLimitAndTheFlag) {
  std::string bomb = (root_ / "bomb.tar.zst").string();
  ASSERT_TRUE(WriteZeroBomb(bomb, uint64_t{1} << 30));
  std::string digest = server_.Add(bomb);
  auto cache = Open({});
  Json spec = {{"rootfs", digest}};
  auto start = std::chrono::steady_clock::now();
  auto got = ResolveRootfs(*cache, spec);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), Code::kInvalidArgument);
  const std::string& m = got.error().message();
  EXPECT_TRUE(Has(m, "cannot fetch rootfs " + digest + ": it unpacks to more than 1024 MiB")) << m;
  EXPECT_TRUE(Has(m, "more than 100 times its size")) << m;
  EXPECT_TRUE(Has(m, "--unpack-max-ratio")) << m;
  EXPECT_LT(took, 10s);
  EXPECT_EQ(spec["rootfs"], digest);
  EXPECT_FALSE(HasTree(digest));
  EXPECT_EQ(InTmp(), 0u);
  EXPECT_LT(FileBytesInCache(), 1u << 20);
  // The same digest is the same bomb: refused again at once, without a second download.
  auto again = cache->Ensure(digest);
  ASSERT_FALSE(again);
  EXPECT_TRUE(Has(again.error().message(), "refused before")) << again.error().message();
  EXPECT_EQ(server_.served(), 1);
  EXPECT_EQ(cache->Usage().refused, 1u);
}

TEST_F(ArtifactCacheTest, TooManyEntriesAreRefusedAndLeaveNothing) {
  ArtifactLimits limits;
  limits.unpack.max_entries = 20;
  std::vector<ArchiveMember> files;
  for (int i = 0; i < 30; ++i) files.push_back({"f" + std::to_string(i), AE_IFREG, "x"});
  std::string path = (root_ / "many.tar.gz").string();
  ASSERT_TRUE(WriteTestArchive(path, files));
  std::string many = server_.Add(path);
  files.resize(20);
  ASSERT_TRUE(WriteTestArchive(path = (root_ / "twenty.tar.gz").string(), files));
  std::string twenty = server_.Add(path);
  auto cache = Open(limits);
  auto got = cache->Ensure(many);
  ASSERT_FALSE(got);
  EXPECT_TRUE(Has(got.error().message(),
                  "more than 20 entries, the limit per artifact (--unpack-max-entries)"))
      << got.error().message();
  EXPECT_FALSE(HasTree(many));
  EXPECT_EQ(InTmp(), 0u);
  auto fits = cache->Ensure(twenty);
  ASSERT_TRUE(fits) << fits.error().message();
  EXPECT_EQ(cache->Usage().entries, 20u);
  EXPECT_EQ(cache->Usage().bytes, 20u);
}

// Budget 10 MiB, trees of 3 MiB: a fetch needs room for its archive and its tree (6 MiB).
TEST_F(ArtifactCacheTest, TheNodeBudgetMakesRoomFromUnusedTreesThenRefuses) {
  ArtifactLimits limits;
  limits.budget_bytes = 10 << 20;
  auto cache = Open(limits);
  std::string a = AddFile("a", 3 << 20), b = AddFile("b", 3 << 20), c = AddFile("c", 3 << 20),
              d = AddFile("d", 3 << 20);
  ASSERT_TRUE(cache->Ensure(a));  // each lease is released at once: only in_use holds a tree
  Advance(1s);
  ASSERT_TRUE(cache->Ensure(b));
  EXPECT_TRUE(HasTree(a) && HasTree(b));
  // c does not fit beside a and b: a, which no task uses, goes; b, which one does, stays.
  SetInUse({b});
  Advance(1s);
  {
    auto got_c = cache->Ensure(c);  // its lease is released at the end of this block
    ASSERT_TRUE(got_c) << got_c.error().message();
  }
  EXPECT_FALSE(HasTree(a));
  EXPECT_TRUE(HasTree(b) && HasTree(c));
  EXPECT_EQ(cache->Usage().removed_trees, 1u);
  // With b and c in use nothing can go: d is refused, clearly, and leaves nothing behind.
  SetInUse({b, c});
  auto got_d = cache->Ensure(d);
  ASSERT_FALSE(got_d);
  EXPECT_EQ(got_d.error().code(), Code::kUnavailable);
  const std::string& m = got_d.error().message();
  EXPECT_TRUE(Has(m, "would go over their budget of 10 MiB (--unpacked-budget-mb)")) << m;
  EXPECT_TRUE(Has(m, "2 trees that tasks use take 6 MiB")) << m;
  EXPECT_TRUE(HasTree(b) && HasTree(c));
  EXPECT_FALSE(HasTree(d));
  EXPECT_EQ(InTmp(), 0u);
  EXPECT_EQ(cache->Usage().in_progress_bytes, 0u);
  EXPECT_LE(FileBytesInCache(), limits.budget_bytes);
  // Not remembered: once c is no longer used, d gets its room.
  SetInUse({b});
  auto again = cache->Ensure(d);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_FALSE(HasTree(c));
  EXPECT_TRUE(HasTree(b) && HasTree(d));
}

TEST_F(ArtifactCacheTest, TheEntryBudgetIsABudgetToo) {
  ArtifactLimits limits;
  limits.budget_entries = 15;
  auto cache = Open(limits);
  std::vector<std::string> digests;
  for (int n = 0; n < 2; ++n) {
    std::vector<ArchiveMember> files;
    for (int i = 0; i < 10; ++i) files.push_back({"f" + std::to_string(i), AE_IFREG, "x"});
    files.push_back({"tag", AE_IFREG, std::to_string(n)});
    std::string path = (root_ / ("e" + std::to_string(n) + ".tar.gz")).string();
    ASSERT_TRUE(WriteTestArchive(path, files));
    digests.push_back(server_.Add(path));
  }
  SetInUse({digests[0]});
  ASSERT_TRUE(cache->Ensure(digests[0]));
  auto second = cache->Ensure(digests[1]);
  ASSERT_FALSE(second);
  EXPECT_TRUE(Has(second.error().message(), "budget of 15 entries (--unpacked-budget-entries)"))
      << second.error().message();
  EXPECT_FALSE(HasTree(digests[1]));
}

TEST_F(ArtifactCacheTest, GarbageCollectionNeverRemovesATreeInUse) {
  ArtifactLimits limits;
  limits.gc_grace = 10min;
  auto cache = Open(limits);
  std::string a = AddFile("a", 1000), b = AddFile("b", 1000), c = AddFile("c", 1000);
  ASSERT_TRUE(cache->Ensure(a));
  ASSERT_TRUE(cache->Ensure(b));
  SetInUse({a});
  Advance(11min);
  EXPECT_EQ(Removed(cache->CollectGarbage()), std::vector<std::string>{b});
  EXPECT_TRUE(HasTree(a));
  EXPECT_FALSE(HasTree(b));
  // In use for hours: never removed.
  for (int i = 0; i < 3; ++i) {
    Advance(1h);
    EXPECT_TRUE(Removed(cache->CollectGarbage()).empty());
  }
  EXPECT_TRUE(HasTree(a));
  // Unused from now: kept through its grace, which counts from its last use, then removed.
  SetInUse({});
  Advance(5min);
  EXPECT_TRUE(Removed(cache->CollectGarbage()).empty());
  Advance(6min);
  EXPECT_EQ(Removed(cache->CollectGarbage()), std::vector<std::string>{a});
  EXPECT_FALSE(HasTree(a));
  // A lease holds a tree whatever in_use says; so does not knowing what tasks use.
  {
    auto lease = cache->Ensure(c);
    ASSERT_TRUE(lease);
    Advance(1h);
    EXPECT_TRUE(Removed(cache->CollectGarbage()).empty());
    EXPECT_TRUE(fs::exists(lease->path() + "/app/c"));
  }
  SetKnown(false);
  Advance(1h);
  EXPECT_TRUE(Removed(cache->CollectGarbage()).empty());
  SetKnown(true);
  EXPECT_EQ(Removed(cache->CollectGarbage()), std::vector<std::string>{c});
  EXPECT_EQ(cache->Usage().removed_trees, 3u);
  EXPECT_EQ(cache->Usage().trees, 0u);
}

// The last use is kept on disk: a restarted agent neither forgets a tree's age nor removes
// what it finds without knowing its age. What is not a tree goes at start.
TEST_F(ArtifactCacheTest, TheGraceOutlivesARestart) {
  ArtifactLimits limits;
  limits.gc_grace = 10min;
  auto cache = Open(limits);
  std::string a = AddFile("a", 1000);
  ASSERT_TRUE(cache->Ensure(a));
  Advance(8min);
  cache.reset();
  fs::create_directories(Dir() + "/sha256/not-a-digest/app");
  fs::create_directories(Dir() + "/tmp/a-fetch-cut-short/tree/app");
  std::ofstream(Dir() + "/tmp/a-fetch-cut-short/archive") << std::string(4096, 'x');
  cache = Open(limits);
  EXPECT_FALSE(fs::exists(Dir() + "/sha256/not-a-digest"));
  EXPECT_EQ(InTmp(), 0u);
  EXPECT_EQ(cache->Usage().trees, 1u);
  EXPECT_EQ(cache->Usage().bytes, 1000u);
  Advance(1min);
  EXPECT_TRUE(Removed(cache->CollectGarbage()).empty());
  Advance(2min);
  EXPECT_EQ(Removed(cache->CollectGarbage()), std::vector<std::string>{a});
}

TEST_F(ArtifactCacheTest, ACrashLeftoverInTmpIsRemovedButAFetchInProgressIsNot) {
  auto cache = Open({});
  // What an agent killed in the middle of a fetch, or of a removal, left behind.
  fs::create_directories(Dir() + "/tmp/0123abcd-XyZ123/tree/app/lib");
  std::ofstream(Dir() + "/tmp/0123abcd-XyZ123/tree/app/lib/big") << std::string(1 << 20, 'x');
  std::string a = AddFile("a", 1000);
  std::promise<void> go;
  std::shared_future<void> gate = go.get_future().share();
  std::atomic<bool> serving{false};
  server_.set_hook([&](const std::string&) {
    serving = true;
    gate.wait();
  });
  Result<ArtifactCache::Lease> fetched = MakeError(Code::kInternal, "not yet");
  std::thread fetch([&] { fetched = cache->Ensure(a); });
  ASSERT_TRUE(WaitFor([&] { return serving.load(); }, 10s));
  auto report = cache->CollectGarbage();
  EXPECT_EQ(report.leftovers, std::vector<std::string>{"0123abcd-XyZ123"});
  EXPECT_FALSE(fs::exists(Dir() + "/tmp/0123abcd-XyZ123"));
  EXPECT_EQ(InTmp(), 1u) << "the fetch in progress keeps its work dir";
  go.set_value();
  fetch.join();
  ASSERT_TRUE(fetched) << fetched.error().message();
  EXPECT_TRUE(HasTree(a));
  EXPECT_EQ(InTmp(), 0u);
}

}  // namespace
}  // namespace mentat
