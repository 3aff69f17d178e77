// A member's disk fills up, in a control plane of three processes: each member's data dir is a
// small tmpfs of its own, and the leader's (or a follower's) is filled to the last byte with a
// file. What an operator expects: no acknowledged write is lost; the two others go on taking
// writes (electing another leader if the full one led); the full member says why in its log,
// and neither crashes nor hangs (it answers its API, knows no leader, refuses writes); its
// /healthz answers 503 with the reason, and /v1/cluster calls it unhealthy; once the file is
// removed and the member restarted, it catches up and holds every acknowledged write.
#include <fcntl.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "e2e/cluster_fixture.h"
#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

// Fills the filesystem holding `path` with that one file, to the last byte it takes.
void FillUp(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << path;
  const std::string zeros(1 << 20, '\0');
  for (size_t chunk = zeros.size(); chunk > 0; chunk /= 2) {
    while (::write(fd, zeros.data(), chunk) > 0) {
    }
  }
  ::close(fd);
  struct statvfs st {};
  ASSERT_EQ(::statvfs(path.c_str(), &st), 0);
  ASSERT_EQ(st.f_bavail, 0u) << "the filesystem under " << path << " is not full";
}

bool Sh(const std::string& cmd) { return RunCommand({"/bin/sh", "-c", cmd}).exit_code == 0; }

class ClusterDiskTest : public ClusterTest {
 protected:
  // Each member's data dir is a tmpfs of 48 MiB: far more than the test writes, and less
  // than the WAL RocksDB would preallocate (about 70 MiB), so a full one fails its next sync.
  void SetUp() override {
    ClusterTest::SetUp();
    for (const auto& m : members_) {
      const std::string data = dir_ + "/" + m.name;
      std::filesystem::create_directories(data);
      ASSERT_TRUE(Sh("mount -t tmpfs -o size=48m tmpfs " + data)) << data;
      mounted_.push_back(data);
    }
  }
  void TearDown() override {
    for (auto& m : members_) m.process.reset();
    for (const auto& data : mounted_) Sh("umount -l " + data);
  }
  // Writes a new Service through m; if it is acknowledged (200 or 201), it joins acknowledged_.
  void Write(const Member& m, int count) {
    const std::string name = "w" + std::to_string(written_++);
    if (const int code = Put(m, name, count); code == 200 || code == 201) {
      acknowledged_[name] = count;
    }
  }
  // The first acknowledged write that m's own state (?consistency=local: no ReadIndex) lacks,
  // with the status it answered; "" when it has them all.
  std::string Lacking(const Member& m) {
    for (const auto& [name, count] : acknowledged_) {
      auto [code, body] = HttpGet(m.api, "/v1/services/" + name + "?consistency=local");
      if (code != 200 || Json::parse(body, nullptr, false)["spec"].value("count", -1) != count) {
        return name + " (" + std::to_string(code) + ")";
      }
    }
    return "";
  }

  void FillAndRecover(bool the_leader);

  std::vector<std::string> mounted_;
  std::map<std::string, int> acknowledged_;  // each acknowledged Service's count
  int written_ = 0;
};

// Fills the disk of the leader (or of a follower) under writes, then frees it and restarts it.
void ClusterDiskTest::FillAndRecover(bool the_leader) {
  for (auto& m : members_) Start(m);
  const std::string leader = AgreedLeader();
  ASSERT_FALSE(leader.empty());
  Member& full = the_leader ? Named(leader) : Named(leader == "n1" ? "n2" : "n1");
  for (int i = 0; i < 20; ++i) Write(members_[i % 3], 0);
  ASSERT_EQ(acknowledged_.size(), 20u);

  FillUp(dir_ + "/" + full.name + "/fill");
  // The two others (electing another leader if it led) take writes; the full member fails.
  std::vector<Member*> rest;
  for (auto& m : members_) {
    if (m.name != full.name) rest.push_back(&m);
  }
  const size_t before = acknowledged_.size();
  EXPECT_TRUE(WaitFor(
      [&] {
        Write(*rest[written_ % 2], written_ % 5);
        const std::string next = AgreedLeaderOf(Others(full.name), 1s);
        return !next.empty() && acknowledged_.size() >= before + 10 &&
               Has(full.process->Log(), "the node stops");
      },
      30s))
      << acknowledged_.size() - before
      << " writes acknowledged since the disk filled; the full member's log:\n"
      << full.process->Log();
  for (int i = 0; i < 30; ++i) Write(*rest[i % 2], i % 5);
  EXPECT_GE(acknowledged_.size(), before + 40);
  if (!the_leader) {
    EXPECT_EQ(AgreedLeaderOf(Others(full.name)), leader);
  }

  // The full member says why, lives on and answers: it knows no leader, and a write through it
  // is refused at once, never made.
  const std::string log = full.process->Log();
  EXPECT_TRUE(Has(log, "No space left on device")) << log;
  EXPECT_TRUE(Has(log, "the node stops \\(restart the server\\)")) << log;
  EXPECT_TRUE(full.process->Running());
  EXPECT_EQ(Status(full).value("leader", "?"), "");
  EXPECT_EQ(Put(full, "refused", 0), 503);
  EXPECT_EQ(HttpGet(rest[0]->api, "/v1/services/refused").first, 404);
  // It answers a linearizable read 503 too, and a local one from what it has.
  EXPECT_EQ(HttpGet(full.api, "/v1/services/w0").first, 503);
  EXPECT_EQ(HttpGet(full.api, "/v1/services/w0?consistency=local").first, 200);
  // Its probes fail with the reason, and /v1/cluster says it is unhealthy: its own, and the
  // others' once its peer port closed.
  for (const char* probe : {"/healthz", "/readyz"}) {
    auto [code, body] = HttpGet(full.api, probe);
    EXPECT_EQ(code, 503) << probe << ": " << body;
    EXPECT_TRUE(Has(body, "log could not be saved .*No space left on device"))
        << probe << ": " << body;
  }
  const Json self = MemberIn(Status(full), full.name);
  EXPECT_FALSE(self.value("healthy", true)) << self.dump();
  EXPECT_TRUE(Has(self.value("reason", ""), "log could not be saved")) << self.dump();
  EXPECT_TRUE(
      WaitFor([&] { return !MemberIn(Status(*rest[0]), full.name).value("healthy", true); }, 10s))
      << Status(*rest[0]).dump();

  // Room again, and a restart (it does not come back by itself): it catches up and has every
  // acknowledged write.
  ASSERT_TRUE(std::filesystem::remove(dir_ + "/" + full.name + "/fill"));
  full.process->Signal(SIGTERM);
  ASSERT_TRUE(full.process->Wait(15s).has_value()) << "the full member did not stop:\n"
                                                   << full.process->Log();
  Start(full);
  std::string lacking;
  EXPECT_TRUE(WaitFor([&] { return (lacking = Lacking(full)).empty(); }, 30s))
      << full.name << " lacks " << lacking << "\n"
      << full.process->Log();
  // No acknowledged write is lost anywhere, and every member takes writes again.
  for (auto& m : members_) {
    EXPECT_EQ(Put(m, "after-" + m.name, 1), 201) << m.name;
    EXPECT_TRUE(WaitFor([&] { return (lacking = Lacking(m)).empty(); }, 10s))
        << m.name << " lacks " << lacking;
  }
  std::cout << acknowledged_.size() << " acknowledged writes of " << written_ << "\n";
}

TEST_F(ClusterDiskTest, ALeaderWhoseDiskFillsGivesWayLosesNothingAndCatchesUpOnceFreed) {
  FillAndRecover(true);
}

TEST_F(ClusterDiskTest, AFollowerWhoseDiskFillsLosesNothingAndCatchesUpOnceFreed) {
  FillAndRecover(false);
}

}  // namespace
}  // namespace mentat::e2e
