// PackDirectory is deterministic: the same tree packs to the same bytes, whatever the files'
// times, owners or creation order; a change of content, mode or link target changes the
// digest; anything but files, directories and symlinks is refused by name.
#include "apis/artifacts/pack.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace mentat {
namespace {

namespace fs = std::filesystem;

class PackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    root_ = fs::path(tmp ? tmp : "/tmp") /
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  // The same tree, made in the given order of its files.
  void MakeTree(const fs::path& dir, bool reverse) {
    fs::create_directories(dir / "static/css");
    fs::create_directories(dir / "empty");
    std::vector<std::pair<std::string, std::string>> files = {
        {"server.js", "require('http')\n"},
        {"static/css/app.css", "body{}\n"},
        {"static/index.html", "<html></html>\n"},
        {std::string(130, 'x') + ".txt", "a long name\n"},
    };
    if (reverse) std::reverse(files.begin(), files.end());
    for (const auto& [name, content] : files) std::ofstream(dir / name) << content;
    fs::permissions(dir / "server.js", fs::perms(0755));
    fs::create_symlink("static/index.html", dir / "index");
  }
  Result<PackedTree> Pack(const fs::path& dir, const std::string& name) {
    return PackDirectory(dir.string(), (root_ / name).string());
  }

  fs::path root_;
};

TEST_F(PackTest, TheSameTreePacksToTheSameDigest) {
  MakeTree(root_ / "a", false);
  auto first = Pack(root_ / "a", "1.tar");
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(first->digest.size(), 7u + 64u);
  EXPECT_EQ(first->entries, 8u);
  auto again = Pack(root_ / "a", "2.tar");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->digest, first->digest);
  EXPECT_EQ(again->bytes, first->bytes);
  // Another copy, made in another order, with other times: the same digest.
  MakeTree(root_ / "b", true);
  timeval old[2] = {{1000000, 0}, {1000000, 0}};
  ::utimes((root_ / "b/server.js").c_str(), old);
  ::utimes((root_ / "b/static").c_str(), old);
  auto copy = Pack(root_ / "b", "3.tar");
  ASSERT_TRUE(copy);
  EXPECT_EQ(copy->digest, first->digest);
}

TEST_F(PackTest, ContentModesAndLinksChangeTheDigest) {
  MakeTree(root_ / "a", false);
  auto base = Pack(root_ / "a", "base.tar");
  ASSERT_TRUE(base);
  std::ofstream(root_ / "a/server.js") << "require('https')\n";
  auto content = Pack(root_ / "a", "content.tar");
  ASSERT_TRUE(content);
  EXPECT_NE(content->digest, base->digest);
  fs::permissions(root_ / "a/static/index.html", fs::perms(0600));
  auto mode = Pack(root_ / "a", "mode.tar");
  ASSERT_TRUE(mode);
  EXPECT_NE(mode->digest, content->digest);
  fs::remove(root_ / "a/index");
  fs::create_symlink("static/css/app.css", root_ / "a/index");
  auto link = Pack(root_ / "a", "link.tar");
  ASSERT_TRUE(link);
  EXPECT_NE(link->digest, mode->digest);
}

TEST_F(PackTest, OnlyFilesDirectoriesAndSymlinksArePacked) {
  MakeTree(root_ / "a", false);
  ASSERT_EQ(::mkfifo((root_ / "a/static/pipe").c_str(), 0644), 0);
  auto packed = Pack(root_ / "a", "fifo.tar");
  ASSERT_FALSE(packed);
  EXPECT_NE(packed.error().message().find("static/pipe is a FIFO"), std::string::npos)
      << packed.error().message();
  auto file = PackDirectory((root_ / "a/server.js").string(), (root_ / "x.tar").string());
  ASSERT_FALSE(file);
  EXPECT_NE(file.error().message().find("not a directory"), std::string::npos);
}

}  // namespace
}  // namespace mentat
