// Log rotation on a real file on disk, with a writer appending through its own O_APPEND
// descriptor, as a workload does.
#include "runtimes/logs/log_rotate.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "runtimes/logs/log_index.h"

namespace mentat {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// What a reader sees of the live file: from the first byte that is still data.
std::string Live(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  int64_t start = LogDataStart(fd);
  ::close(fd);
  return Slurp(path).substr(static_cast<size_t>(start));
}

int64_t DiskBytes(const std::string& path) {
  struct stat st {};
  ::stat(path.c_str(), &st);
  return static_cast<int64_t>(st.st_blocks) * 512;
}

std::string Line(int i) { return "line " + std::to_string(i) + " of the workload's output\n"; }

class LogRotateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    log_ = dir_ + "/stdout.log";
    index_ = dir_ + "/stdout.idx";
    fd_ = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0640);
    ASSERT_GE(fd_, 0);
  }
  void TearDown() override { ::close(fd_); }
  void Write(const std::string& s) { ASSERT_EQ(::write(fd_, s.data(), s.size()), static_cast<ssize_t>(s.size())); }

  std::string dir_, log_, index_;
  int fd_ = -1;
};

TEST_F(LogRotateTest, UnderTheLimitNothingHappens) {
  Write(Line(1));
  auto r = RotateLog(log_, index_, {.max_file_bytes = 4096, .max_files = 2});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_FALSE(*r);
  EXPECT_FALSE(fs::exists(log_ + ".1"));
  EXPECT_FALSE(*RotateLog(dir_ + "/absent.log", index_, {}));
}

TEST_F(LogRotateTest, TheOldPartMovesToAnArchiveAndOffsetsStay) {
  std::string all;
  for (int i = 0; all.size() < 300000; ++i) all += Line(i);
  Write(all);
  int64_t before = DiskBytes(log_);
  auto r = RotateLog(log_, index_, {.max_file_bytes = 100000, .max_files = 2});
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_TRUE(*r);
  // The size (and so every offset) is unchanged; the blocks of the old part are freed.
  EXPECT_EQ(fs::file_size(log_), all.size());
  EXPECT_LT(DiskBytes(log_), before / 2) << "the old part still takes disk space";
  // What went by became archives of at most the limit, .1 the newest, contiguous with the live
  // part; the older rest is past max_files and gone.
  std::string live = Live(log_);
  EXPECT_EQ(fs::file_size(log_ + ".1"), 100000u);
  EXPECT_EQ(fs::file_size(log_ + ".2"), 100000u);
  EXPECT_FALSE(fs::exists(log_ + ".3"));
  std::string kept = Slurp(log_ + ".2") + Slurp(log_ + ".1") + live;
  EXPECT_TRUE(all.substr(all.size() - kept.size()) == kept) << "archives and live file are the stream's end, in order";
  EXPECT_GE(live.size(), 100000u / 4 - 4096) << "the newest quarter of the limit stays live";
  EXPECT_LE(live.size(), 100000u / 4 + 4096);
  // The workload's next write lands right after the old end.
  Write("after\n");
  EXPECT_EQ(Slurp(log_).substr(all.size()), "after\n");
}

TEST_F(LogRotateTest, AWriterRacingTheRotationsLosesNothing) {
  std::atomic<bool> done{false};
  std::string expected;
  std::thread writer([&] {
    for (int i = 0; i < 200000; ++i) {
      std::string l = Line(i);
      expected += l;
      if (::write(fd_, l.data(), l.size()) != static_cast<ssize_t>(l.size())) break;
    }
    done = true;
  });
  // A slow follower, like `mt logs -f`: small reads, always behind the rotations.
  std::string followed;
  std::atomic<bool> stop_following{false};
  std::thread follower([&] {
    int64_t offset = 0;
    while (!stop_following) {
      std::string more = ReadLog(log_, &offset, 1000);
      followed += more;
      if (more.empty()) std::this_thread::yield();
    }
    for (std::string more; !(more = ReadLog(log_, &offset)).empty();) followed += more;
  });
  LogLimits limits{.max_file_bytes = 64 << 10, .max_files = 1000};
  int rotations = 0;
  while (!done) {
    auto r = RotateLog(log_, index_, limits);
    ASSERT_TRUE(r) << r.error().message();
    rotations += *r;
    if (fs::exists(log_ + ".900")) break;  // keep every archive for the comparison
  }
  writer.join();
  stop_following = true;
  follower.join();
  ASSERT_GT(rotations, 3) << "the writer was too fast to rotate under";
  EXPECT_EQ(followed.size(), expected.size());
  EXPECT_TRUE(followed == expected) << "the follower lost or repeated output across rotations";
  int64_t from_zero = 0;
  EXPECT_TRUE(ReadLog(log_, &from_zero, 64 << 20) == expected) << "reading from offset 0 crosses every archive";
  std::string got;
  int archives = 0;
  while (fs::exists(log_ + "." + std::to_string(archives + 1))) ++archives;
  for (int i = archives; i >= 1; --i) got += Slurp(log_ + "." + std::to_string(i));
  got += Live(log_);
  ASSERT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected) << "the archives and the live file differ from what was written";
}

TEST_F(LogRotateTest, OnlyMaxFilesArchivesAreKeptAndDiskStaysBounded) {
  LogLimits limits{.max_file_bytes = 32 << 10, .max_files = 2};
  Write(std::string(8000, 'x').append("\n"));
  std::string last_archive;
  for (int round = 0; round < 10; ++round) {
    std::string chunk;
    for (int i = 0; chunk.size() < 30000; ++i) chunk += "round " + std::to_string(round) + " " + Line(i);
    Write(chunk);
    ASSERT_TRUE(*RotateLog(log_, index_, limits));
    EXPECT_EQ(Slurp(log_ + ".2"), last_archive) << "the previous .1 became .2";
    last_archive = Slurp(log_ + ".1");
  }
  EXPECT_FALSE(fs::exists(log_ + ".3"));
  EXPECT_NE(last_archive.find("round 9"), std::string::npos);
  // Older than every archive: the read starts at the oldest whole line still kept.
  int64_t offset = 0;
  std::string oldest = ReadLog(log_, &offset);
  EXPECT_EQ(offset, static_cast<int64_t>(fs::file_size(log_)));
  EXPECT_EQ(oldest.rfind("round ", 0), 0u) << oldest.substr(0, 80);
  EXPECT_EQ(oldest.substr(oldest.size() - 80), Slurp(log_).substr(fs::file_size(log_) - 80));
  EXPECT_LE(DiskBytes(log_), (32 << 10) + 2 * 4096) << "live part bounded by the limit";
  EXPECT_GE(fs::file_size(log_), 10u * 30000) << "offsets still count every byte ever written";
}

std::string LastN(const std::string& text, int n) {
  size_t pos = text.size() - 1;
  for (int i = 0; i < n; ++i) pos = text.rfind('\n', pos - 1);
  return text.substr(pos + 1);
}

TEST_F(LogRotateTest, TailReachesIntoTheArchives) {
  std::string all;
  for (int i = 0; all.size() < 300000; ++i) all += Line(i);
  Write(all);
  ASSERT_TRUE(*RotateLog(log_, index_, {.max_file_bytes = 100000, .max_files = 1}));
  int64_t end = 0;
  EXPECT_EQ(ReadLogTail(log_, 3, &end), LastN(all, 3));
  EXPECT_EQ(end, static_cast<int64_t>(all.size()));
  std::string live = Live(log_);
  size_t live_lines = std::count(live.begin(), live.end(), '\n');
  int n = static_cast<int>(live_lines) + 500;
  EXPECT_EQ(ReadLogTail(log_, n, &end), LastN(all, n)) << "the tail crosses into stdout.log.1";
  EXPECT_EQ(ReadLogTail(log_, 0, &end), "");
  // More than is kept: every whole line kept, and no piece of one.
  std::string kept = ReadLogTail(log_, 1000000, &end);
  EXPECT_EQ(kept.rfind("line ", 0), 0u) << kept.substr(0, 40);
  EXPECT_EQ(all.substr(all.size() - kept.size()), kept);
  // A partial last line is a line too.
  Write("no newline yet");
  EXPECT_EQ(ReadLogTail(log_, 2, &end), LastN(all, 1) + "no newline yet");
}

TEST_F(LogRotateTest, ABurstBetweenSamplesBecomesSeveralArchivesOfTheLimit) {
  std::string all;
  for (int i = 0; all.size() < 500000; ++i) all += Line(i);
  Write(all);
  ASSERT_TRUE(*RotateLog(log_, index_, {.max_file_bytes = 100000, .max_files = 3}));
  for (const char* n : {".1", ".2", ".3"}) {
    EXPECT_EQ(fs::file_size(log_ + n), 100000u) << n;
  }
  EXPECT_FALSE(fs::exists(log_ + ".4"));
  std::string kept = Slurp(log_ + ".3") + Slurp(log_ + ".2") + Slurp(log_ + ".1") + Live(log_);
  EXPECT_EQ(all.substr(all.size() - kept.size()), kept) << "the newest 3 archives, contiguous";
}

TEST_F(LogRotateTest, NoArchivesJustDropsTheOldPart) {
  std::string all;
  for (int i = 0; all.size() < 100000; ++i) all += Line(i);
  Write(all);
  ASSERT_TRUE(*RotateLog(log_, index_, {.max_file_bytes = 20000, .max_files = 0}));
  EXPECT_FALSE(fs::exists(log_ + ".1"));
  std::string live = Live(log_);
  EXPECT_EQ(all.substr(all.size() - live.size()), live);
  EXPECT_LT(live.size(), 20000u);
}

TEST_F(LogRotateTest, TheTimeIndexForgetsWhatWasRotatedAway) {
  const int64_t t0 = 1'800'000'000'000'000'000;  // ns
  const int64_t second = 1'000'000'000;
  std::vector<int64_t> sizes;  // the log's size at each one-second sample
  int64_t total = 0;
  for (int s = 0; s < 50; ++s) {
    std::string chunk;
    for (int i = 0; chunk.size() < 4000; ++i) chunk += Line(i);
    Write(chunk);
    total += static_cast<int64_t>(chunk.size());
    sizes.push_back(total);
    SampleLogSize(log_, index_, t0 + s * second);
  }
  ASSERT_EQ(fs::file_size(index_), 50u * 16);
  ASSERT_TRUE(*RotateLog(log_, index_, {.max_file_bytes = 40000, .max_files = 1}));
  // 40000 bytes live at most, 40000 in .1: the records of about 20 samples are kept.
  EXPECT_LT(fs::file_size(index_), 25u * 16) << "records of what no file keeps are dropped";
  int fd = ::open(log_.c_str(), O_RDONLY);
  int64_t start = LogDataStart(fd);
  ::close(fd);
  // Recent times still map exactly; a time in the rotated past maps to at most the live start
  // (readers move up to it).
  EXPECT_EQ(LogOffsetSince(log_, index_, t0 + 48 * second + 1), sizes[48]);
  EXPECT_EQ(LogOffsetSince(log_, index_, t0 + 49 * second + 1), sizes[49]);
  EXPECT_EQ(ReadIndex(index_).back().time_ns, t0 + 49 * second);
  EXPECT_LE(LogOffsetSince(log_, index_, t0 + 1), start);
}

TEST_F(LogRotateTest, AnOlderAgentsMillisecondIndexReadsAsNanoseconds) {
  Write(Line(0));
  const int64_t ms = 1'764'000'000'000;  // what agents before the relay wrote
  IndexRecord r{ms, static_cast<int64_t>(Line(0).size())};
  std::ofstream(index_, std::ios::binary).write(reinterpret_cast<const char*>(&r), sizeof(r));
  auto records = ReadIndex(index_);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].time_ns, ms * 1'000'000);
  EXPECT_EQ(LogOffsetSince(log_, index_, ms * 1'000'000 + 1), r.size);
  EXPECT_EQ(LogOffsetSince(log_, index_, ms * 1'000'000), 0);
}

}  // namespace
}  // namespace mentat
