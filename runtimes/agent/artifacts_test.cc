// UnpackArchive against hostile archives, made here with libarchive: entries that climb out
// with "..", absolute paths, a symlink pointing out followed by a file written through it,
// device nodes, FIFOs, hard links, setuid bits and a size bomb. Each is refused (or, for the
// mode bits, neutralized) and nothing lands outside the destination. And the round trip: a
// tree packed by mt's PackDirectory unpacks to the same files, modes and links.
#include "runtimes/agent/artifacts.h"

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "cmd/mt/pack.h"

namespace mentat {
namespace {

namespace fs = std::filesystem;

struct Entry {
  std::string name;
  mode_t type = AE_IFREG;
  std::string content;
  mode_t perm = 0644;
  std::string link;       // symlink target
  std::string hardlink;   // hard link target
  int64_t declared = -1;  // size in the header, when it lies
};

void WriteArchive(const std::string& path, const std::vector<Entry>& entries) {
  struct archive* a = archive_write_new();
  archive_write_add_filter_gzip(a);
  archive_write_set_format_pax_restricted(a);
  ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK);
  for (const auto& e : entries) {
    archive_entry* en = archive_entry_new();
    archive_entry_set_pathname(en, e.name.c_str());
    archive_entry_set_filetype(en, e.type);
    archive_entry_set_perm(en, e.perm);
    if (!e.link.empty()) archive_entry_set_symlink(en, e.link.c_str());
    if (!e.hardlink.empty()) archive_entry_set_hardlink(en, e.hardlink.c_str());
    if (e.type == AE_IFCHR) archive_entry_set_rdev(en, makedev(1, 3));
    if (e.type == AE_IFREG && e.hardlink.empty()) {
      archive_entry_set_size(en, e.declared >= 0 ? e.declared : e.content.size());
    }
    archive_write_header(a, en);
    if (!e.content.empty()) archive_write_data(a, e.content.data(), e.content.size());
    archive_entry_free(en);
  }
  archive_write_close(a);
  archive_write_free(a);
}

class UnpackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    root_ = fs::path(tmp ? tmp : "/tmp") /
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    fs::create_directories(root_ / "dest");
    fs::create_directories(root_ / "outside");
    archive_ = (root_ / "a.tar.gz").string();
  }
  std::string Dest() const { return (root_ / "dest").string(); }
  std::string Outside() const { return (root_ / "outside").string(); }
  bool OutsideEmpty() const { return fs::is_empty(root_ / "outside"); }
  Status Unpack(const std::vector<Entry>& entries, uint64_t max_bytes = kMaxUnpackedBytes) {
    WriteArchive(archive_, entries);
    return UnpackArchive(archive_, Dest(), max_bytes);
  }

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
             /*max_bytes=*/5000);
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message().find("unpacks to more than"), std::string::npos);
  std::ofstream(archive_) << "this is not an archive at all";
  auto junk = UnpackArchive(archive_, Dest());
  EXPECT_FALSE(junk);
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
  auto packed = mt::PackDirectory(src.string(), archive_);
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
