// UnpackArchive against hostile archives, made here with libarchive: entries that climb out
// with "..", absolute paths, a symlink pointing out followed by a file written through it,
// device nodes, FIFOs, hard links, setuid bits, decompression bombs and too many entries. Each
// is refused (or, for the mode bits, neutralized), nothing lands outside the destination and
// a bomb writes nothing past its limit. And the round trip: a tree packed by
// PackDirectory unpacks to the same files, modes and links.
#include "apis/artifacts/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <vector>

#include "apis/artifacts/archive_testing.h"
#include "apis/artifacts/pack.h"

namespace mentat {
namespace {

namespace fs = std::filesystem;

using Entry = ArchiveMember;

class UnpackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = FreshTestDir();
    fs::create_directories(root_ / "dest");
    fs::create_directories(root_ / "outside");
    archive_ = (root_ / "a.tar.gz").string();
  }
  std::string Dest() const { return (root_ / "dest").string(); }
  std::string Outside() const { return (root_ / "outside").string(); }
  bool OutsideEmpty() const { return fs::is_empty(root_ / "outside"); }
  Result<UnpackedSize> Unpack(const std::vector<ArchiveMember>& entries, UnpackLimits limits = {}) {
    WriteTestArchive(archive_, entries);
    return UnpackArchive(archive_, Dest(), limits);
  }
  // What landed under dest/, however the unpacking ended.
  UnpackedSize Written() const { return MeasureTree(Dest()).value_or(UnpackedSize{}); }

  fs::path root_;
  std::string archive_;
};

TEST_F(UnpackTest, DotDotIsRefused) {
  auto st = Unpack({{"ok.txt", AE_IFREG, "fine"}, {"../outside/evil", AE_IFREG, "pwned"}});
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("climbs out"), std::string::npos) << st.error().message();
  EXPECT_TRUE(OutsideEmpty());
  EXPECT_FALSE(fs::exists(root_ / "evil"));
  auto nested = Unpack({{"a/../../outside/evil2", AE_IFREG, "pwned"}});
  ASSERT_FALSE(nested);
  EXPECT_TRUE(OutsideEmpty());
}

TEST_F(UnpackTest, AbsolutePathsAreRefused) {
  std::string target = Outside() + "/abs";
  auto st = Unpack({{target, AE_IFREG, "pwned"}});
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("absolute"), std::string::npos) << st.error().message();
  EXPECT_FALSE(fs::exists(target));
}

TEST_F(UnpackTest, NothingIsWrittenThroughASymlink) {
  // A link to a directory outside, then a file "inside" it.
  auto st = Unpack({{"out", AE_IFLNK, "", 0777, Outside()}, {"out/pwned", AE_IFREG, "pwned"}});
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("out/pwned"), std::string::npos) << st.error().message();
  EXPECT_TRUE(OutsideEmpty());
  fs::remove_all(Dest());
  fs::create_directories(Dest());
  // The same with a relative link.
  auto rel = Unpack({{"up", AE_IFLNK, "", 0777, "../outside"}, {"up/pwned", AE_IFREG, "pwned"}});
  ASSERT_FALSE(rel);
  EXPECT_TRUE(OutsideEmpty());
  fs::remove_all(Dest());
  fs::create_directories(Dest());
  // A link that points out is kept as a link; only writing through it is refused.
  ASSERT_TRUE(Unpack({{"etc-link", AE_IFLNK, "", 0777, "/etc"}}));
  EXPECT_TRUE(fs::is_symlink(root_ / "dest/etc-link"));
  EXPECT_EQ(fs::read_symlink(root_ / "dest/etc-link"), "/etc");
}

TEST_F(UnpackTest, DeviceNodesFifosAndHardLinksAreRefused) {
  auto dev = Unpack({{"dev/mem", AE_IFCHR}});
  ASSERT_FALSE(dev);
  EXPECT_NE(dev.error().message().find("character device"), std::string::npos)
      << dev.error().message();
  EXPECT_FALSE(fs::exists(root_ / "dest/dev/mem"));
  auto fifo = Unpack({{"pipe", AE_IFIFO}});
  ASSERT_FALSE(fifo);
  EXPECT_NE(fifo.error().message().find("FIFO"), std::string::npos);
  auto hard = Unpack({{"passwd", AE_IFREG, "", 0644, "", "/etc/passwd"}});
  ASSERT_FALSE(hard);
  EXPECT_NE(hard.error().message().find("hard link"), std::string::npos);
}

TEST_F(UnpackTest, SetuidAndOwnersAreNotRestored) {
  ASSERT_TRUE(Unpack({{"bin", AE_IFDIR, "", 07755}, {"bin/tool", AE_IFREG, "#!/bin/sh\n", 06755}}));
  struct stat st {};
  ASSERT_EQ(::stat((root_ / "dest/bin/tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(st.st_uid, ::getuid());
  ASSERT_EQ(::stat((root_ / "dest/bin").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
}

TEST_F(UnpackTest, BombsAndLiesAreRefused) {
  auto big =
      Unpack({{"a", AE_IFREG, std::string(3000, 'x')}, {"b", AE_IFREG, std::string(3000, 'y')}},
             {.max_bytes = 5000});
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message().find("would take more than 4 KiB"), std::string::npos)
      << big.error().message();
  EXPECT_LE(Written().bytes, 5000u);
  std::ofstream(archive_) << "this is not an archive at all";
  auto junk = UnpackArchive(archive_, Dest());
  EXPECT_FALSE(junk);
}

// The defaults an operator gets without flags: far below the 16 GiB of old.
TEST(UnpackLimitsTest, DefaultsAreSane) {
  UnpackLimits d;
  EXPECT_EQ(d.max_bytes, uint64_t{2} << 30);
  EXPECT_EQ(d.max_entries, 100000u);
  EXPECT_EQ(d.max_ratio, 100u);
}

// Issue 17's bomb: 1 GiB of zeros in ~33 KB of zstd. With the default limits it is refused on
// its header, by its ratio, before a byte of it is written, and quickly.
TEST_F(UnpackTest, TheZstdBombIsRefusedBeforeItIsWritten) {
  std::string bomb = (root_ / "bomb.tar.zst").string();
  ASSERT_TRUE(WriteZeroBomb(bomb, uint64_t{1} << 30));
  EXPECT_LT(fs::file_size(bomb), 64u << 10);
  auto start = std::chrono::steady_clock::now();
  auto got = UnpackArchive(bomb, Dest());
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(got) << "unpacked " << got->bytes << " bytes";
  EXPECT_EQ(got.error().code(), Code::kInvalidArgument);
  EXPECT_NE(got.error().message().find("unpacks to more than 1024 MiB from an archive of"),
            std::string::npos)
      << got.error().message();
  EXPECT_NE(got.error().message().find("--unpack-max-ratio"), std::string::npos);
  EXPECT_EQ(Written().bytes, 0u);
  EXPECT_LT(took, std::chrono::seconds(5));
}

// A bomb of many files, each small, with the ratio check off: the byte limit stops it, and no
// more than the limit is ever written.
TEST_F(UnpackTest, ABombOfManyFilesWritesNoMoreThanTheLimit) {
  std::string bomb = (root_ / "many.tar.zst").string();
  ASSERT_TRUE(WriteZeroBomb(bomb, 3 << 20, 64));  // 192 MiB
  auto got = UnpackArchive(bomb, Dest(), {.max_bytes = 8 << 20, .max_ratio = 0});
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().message().find("would take more than 8 MiB, the limit per artifact "
                                       "(--unpack-max-mb)"),
            std::string::npos)
      << got.error().message();
  EXPECT_LE(Written().bytes, uint64_t{8} << 20);
  // The ratio alone, with a low floor, stops it sooner.
  fs::remove_all(Dest());
  fs::create_directories(Dest());
  auto by_ratio = UnpackArchive(bomb, Dest(), {.max_ratio = 100, .ratio_floor = 1 << 20});
  ASSERT_FALSE(by_ratio);
  EXPECT_NE(by_ratio.error().message().find("times its size"), std::string::npos);
  EXPECT_EQ(Written().bytes, 0u);
}

TEST_F(UnpackTest, TooManyEntriesAreRefused) {
  std::vector<ArchiveMember> entries = {{"d", AE_IFDIR, "", 0755}};
  for (int i = 0; i < 60; ++i) entries.push_back({"d/f" + std::to_string(i), AE_IFREG, "x"});
  auto got = Unpack(entries, {.max_entries = 50});
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().message().find("more than 50 entries, the limit per artifact "
                                       "(--unpack-max-entries)"),
            std::string::npos)
      << got.error().message();
  EXPECT_LE(Written().entries, 50u);
  fs::remove_all(Dest());
  fs::create_directories(Dest());
  entries.resize(50);
  auto fits = Unpack(entries, {.max_entries = 50});
  ASSERT_TRUE(fits) << fits.error().message();
  EXPECT_EQ(fits->entries, 50u);
  EXPECT_EQ(fits->bytes, 49u);
}

// The budget hook sees every entry before it is written, and its refusal stops the archive.
TEST_F(UnpackTest, TheReserveHookIsAskedBeforeEachEntry) {
  uint64_t granted = 0;
  WriteTestArchive(
      archive_, {{"a", AE_IFREG, std::string(1000, 'a')}, {"b", AE_IFREG, std::string(1000, 'b')}});
  auto got = UnpackArchive(archive_, Dest(), {}, [&](uint64_t bytes, uint64_t) -> Status {
    if (granted + bytes > 1500) return Unavailable("the budget is spent");
    granted += bytes;
    return {};
  });
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), Code::kUnavailable);
  EXPECT_EQ(got.error().message(), "the budget is spent");
  EXPECT_FALSE(fs::exists(root_ / "dest/b"));
}

// A directory an archive leaves without permissions still goes, with all under it.
TEST_F(UnpackTest, RemoveTreeOpensUpLockedDirectories) {
  ASSERT_TRUE(Unpack({{"locked", AE_IFDIR, "", 0755},
                      {"locked/inner", AE_IFDIR, "", 0755},
                      {"locked/inner/f", AE_IFREG, "x"}}));
  fs::permissions(root_ / "dest/locked/inner", fs::perms::none);
  fs::permissions(root_ / "dest/locked", fs::perms::none);
  ASSERT_TRUE(RemoveTree(Dest()));
  EXPECT_FALSE(fs::exists(root_ / "dest"));
}

TEST_F(UnpackTest, APackedTreeRoundTrips) {
  fs::path src = root_ / "src";
  fs::create_directories(src / "lib/deep");
  fs::create_directories(src / "empty");
  std::ofstream(src / "main.py") << "print('hi')\n";
  std::ofstream(src / "lib/deep/data.bin") << std::string(100000, '\7');
  std::ofstream(src / "run.sh") << "#!/bin/sh\n";
  fs::permissions(src / "run.sh", fs::perms(0750));
  fs::create_symlink("lib/deep/data.bin", src / "data");
  std::string long_name(150, 'n');
  std::ofstream(src / long_name) << "long";
  auto packed = PackDirectory(src.string(), archive_);
  ASSERT_TRUE(packed) << packed.error().message();
  ASSERT_TRUE(UnpackArchive(archive_, Dest()));
  fs::path d = root_ / "dest";
  EXPECT_TRUE(fs::is_directory(d / "empty"));
  EXPECT_EQ(fs::file_size(d / "lib/deep/data.bin"), 100000u);
  EXPECT_EQ(fs::status(d / "run.sh").permissions(), fs::perms(0750));
  EXPECT_EQ(fs::read_symlink(d / "data"), "lib/deep/data.bin");
  EXPECT_TRUE(fs::exists(d / long_name));
  std::ifstream f(d / "main.py");
  std::string line;
  std::getline(f, line);
  EXPECT_EQ(line, "print('hi')");
}

}  // namespace
}  // namespace mentat
