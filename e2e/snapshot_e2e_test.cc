// Snapshots with the real binaries: `mt snapshot save`, `mentat-server --restore` into a fresh
// data dir reproducing every object and the revision, refusal of corrupt and truncated files
// without writing anything, and scheduled snapshots with retention.
#include <signal.h>

#include <filesystem>
#include <set>

#include <gtest/gtest.h>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
namespace fs = std::filesystem;

class SnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("snapshot");
    port_ = FreePort();
  }
  std::unique_ptr<Process> Server(const std::string& data, std::vector<std::string> extra = {}) {
    auto p = StartServer(port_, data, dir_ + "/server.log", extra);
    EXPECT_TRUE(p) << ReadFile(dir_ + "/server.log");
    return p;
  }
  CommandResult Mt(std::vector<std::string> args) {
    args.insert(args.begin(), Runfile("cmd/mt/mt"));
    return RunCommand(args, {"MENTAT_ADDR=http://127.0.0.1:" + std::to_string(port_)});
  }
  int64_t Revision() {
    return Json::parse(HttpGet(port_, "/healthz").second).value("revision", int64_t{-1});
  }
  Json Everything() {
    Json all = Json::object();
    for (const char* plural : {"services", "securityprofiles", "nodes", "allocations"}) {
      all[plural] = Json::parse(HttpGet(port_, std::string("/v1/") + plural).second)["items"];
    }
    return all;
  }
  CommandResult Restore(const std::string& file, const std::string& data) {
    return RunCommand({Runfile("cmd/mentat-server/mentat-server"), "--restore", file,
                       "--data-dir", data});
  }
  std::string dir_;
  int port_ = 0;
};

TEST_F(SnapshotTest, SaveAndRestoreReproduceEveryObjectAndTheRevision) {
  auto server = Server(dir_ + "/a");
  ASSERT_EQ(Mt({"apply", "-f", Runfile("examples/seeds/drivers")}).exit_code, 0);
  ASSERT_EQ(Mt({"apply", "-f", Runfile("examples/seeds/security")}).exit_code, 0);
  std::string file = dir_ + "/backup.snap";
  auto saved = Mt({"snapshot", "save", file});
  ASSERT_EQ(saved.exit_code, 0) << saved.err;
  // The snapshot's own revision, as mt reports it: the server may write more after it (status,
  // events), so the revision read now could be later than the snapshot's.
  auto at = saved.out.find("at revision ");
  ASSERT_NE(at, std::string::npos) << saved.out;
  int64_t rev = std::atoll(saved.out.c_str() + at + 12);
  ASSERT_GT(rev, 0) << saved.out;
  Json before = Everything();
  server->Signal(SIGTERM);
  ASSERT_TRUE(server->Wait(10s).has_value());

  auto restored = Restore(file, dir_ + "/b");
  ASSERT_EQ(restored.exit_code, 0) << restored.err;
  server = Server(dir_ + "/b");
  // Objects and the revision are the snapshot's (the controller may write status later,
  // so compare right away and by content).
  EXPECT_GE(Revision(), rev);
  Json after = Everything();
  EXPECT_EQ(after["services"].size(), before["services"].size());
  for (size_t i = 0; i < before["services"].size(); ++i) {
    EXPECT_EQ(after["services"][i]["spec"], before["services"][i]["spec"]);
    EXPECT_EQ(after["services"][i]["metadata"]["uid"], before["services"][i]["metadata"]["uid"]);
  }
  EXPECT_EQ(after["securityprofiles"], before["securityprofiles"]);
  // History before the snapshot is gone: a watch from there is 410, from the snapshot is fine.
  EXPECT_EQ(HttpGet(port_, "/v1/services?watch=true&resourceVersion=1").first, 410);
}

TEST_F(SnapshotTest, CorruptTruncatedOrMisplacedSnapshotsAreRefusedAndNothingIsWritten) {
  auto server = Server(dir_ + "/a");
  ASSERT_EQ(Mt({"apply", "-f", Runfile("examples/seeds/drivers")}).exit_code, 0);
  std::string file = dir_ + "/good.snap";
  ASSERT_EQ(Mt({"snapshot", "save", file}).exit_code, 0);
  std::string good = ReadFile(file);

  std::string corrupt = good;
  corrupt[corrupt.size() / 2] ^= 0x20;
  WriteFile(dir_ + "/corrupt.snap", corrupt);
  auto r1 = Restore(dir_ + "/corrupt.snap", dir_ + "/c1");
  EXPECT_EQ(r1.exit_code, 1);
  EXPECT_NE(r1.err.find("checksum does not match"), std::string::npos) << r1.err;
  EXPECT_FALSE(fs::exists(dir_ + "/c1/store"));

  WriteFile(dir_ + "/truncated.snap", good.substr(0, good.size() / 2));
  auto r2 = Restore(dir_ + "/truncated.snap", dir_ + "/c2");
  EXPECT_EQ(r2.exit_code, 1);
  EXPECT_NE(r2.err.find("not a valid Mentat snapshot"), std::string::npos) << r2.err;
  EXPECT_FALSE(fs::exists(dir_ + "/c2/store"));

  WriteFile(dir_ + "/other.snap", "hello\n");
  EXPECT_EQ(Restore(dir_ + "/other.snap", dir_ + "/c3").exit_code, 1);

  // Never over an existing store.
  server->Signal(SIGTERM);
  ASSERT_TRUE(server->Wait(10s).has_value());
  auto r4 = Restore(file, dir_ + "/a");
  EXPECT_EQ(r4.exit_code, 1);
  EXPECT_NE(r4.err.find("already holds a store"), std::string::npos) << r4.err;
}

TEST_F(SnapshotTest, ScheduledSnapshotsKeepTheNewestN) {
  std::string snaps = dir_ + "/snaps";
  auto count = [&] {
    int n = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(snaps, ec)) n += e.path().extension() == ".snap";
    return n;
  };
  auto server = Server(dir_ + "/a", {"--snapshot-dir", snaps, "--snapshot-interval", "1",
                                     "--snapshot-keep", "2"});
  ASSERT_TRUE(WaitFor([&] { return count() == 2; }, 15s));
  // Later snapshots replace the oldest. A new one is complete before the oldest goes (so a
  // failed snapshot never costs a good one): for that moment there are three, never more.
  std::set<std::string> seen;
  ASSERT_TRUE(WaitFor([&] {
    EXPECT_LE(count(), 3);
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(snaps, ec)) seen.insert(e.path().filename());
    return seen.size() >= 4;
  }, 20s));
  EXPECT_TRUE(WaitFor([&] { return count() == 2; }, 5s));
  // A scheduled snapshot restores. The server rotates them every second, so one is copied out
  // first (retried if it is rotated away mid-copy).
  std::string copy = dir_ + "/scheduled-copy.snap";
  ASSERT_TRUE(WaitFor([&] {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(snaps, ec)) {
      if (e.path().extension() != ".snap") continue;
      if (fs::copy_file(e.path(), copy, fs::copy_options::overwrite_existing, ec)) return true;
    }
    return false;
  }, 10s));
  auto r = Restore(copy, dir_ + "/check-scheduled");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

}  // namespace
}  // namespace mentat::e2e
