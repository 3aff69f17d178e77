// Durability across a power loss, simulated. This kernel has no device-mapper (so no
// dm-flakey); instead the server's data dir is on lazyfs (//e2e/lazyfs), a FUSE filesystem that
// keeps written data in memory until the server fsyncs it and, on SIGUSR1, drops everything
// unsynced and unmounts, as a power cut would. The server is then restarted directly on the
// backing directory, which holds exactly what was synced, and every acknowledged write is
// checked. A negative control runs the server with --unsafe-no-fsync and shows that the same
// check fails there, so the test can catch a server that acknowledges before it syncs.
//
// lazyfs loses unsynced file *data*; directory operations (create, rename, unlink) reach the
// backing directory at once, so lost directory entries are not modelled.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <sys/wait.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

constexpr long kFuseSuperMagic = 0x65735546;

// A lazyfs mount for one test; unmounted when destroyed, even if the test failed half-way.
class LazyFsMount {
 public:
  LazyFsMount(const std::string& backing, const std::string& mountpoint, const std::string& log)
      : mountpoint_(mountpoint), log_(log) {
    process_ = std::make_unique<Process>(
        std::vector<std::string>{Runfile("e2e/lazyfs/lazyfs"), backing, mountpoint}, log);
  }

  ~LazyFsMount() {
    if (process_->Running()) {
      process_->Signal(SIGTERM);
      if (!process_->Wait(5s)) process_->Signal(SIGKILL);
    }
    process_.reset();
    // A lazyfs that died leaves a dead mount behind (ENOTCONN): detach it.
    if (Mounted()) umount2(mountpoint_.c_str(), MNT_DETACH);
  }

  bool Mounted() const {
    struct statfs st {};
    return statfs(mountpoint_.c_str(), &st) == 0 && st.f_type == kFuseSuperMagic;
  }

  bool WaitMounted() {
    return WaitFor([&] { return Mounted() || !process_->Running(); }, 10s) && Mounted();
  }

  // The power goes out: lazyfs drops every unsynced byte and detaches the mount; it exits
  // once the last file on it is closed.
  void CutPower() { process_->Signal(SIGUSR1); }
  bool PowerIsCut() const { return Log().find("power cut") != std::string::npos; }
  bool WaitExited() {
    auto status = process_->Wait(15s);
    return status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
  }

  std::string Log() const { return ReadFile(log_); }

 private:
  std::string mountpoint_;
  std::string log_;
  std::unique_ptr<Process> process_;
};

struct PowerLossRun {
  std::map<std::string, int64_t> acked;  // name -> resourceVersion of its last acknowledged write
  int64_t max_acked_revision = 0;
  int total_acks = 0;
  int64_t revision_after = 0;        // the restarted server's revision
  std::vector<std::string> missing;  // acknowledged writes not found after the power loss
  std::string lazyfs_log;
};

// Which goes first when the power fails: the server process or the disk's unsynced data.
enum class CutOrder { kKillThenCut, kCutThenKill };

class PowerLoss : public ::testing::Test {
 protected:
  // The test's mounts live in a mount namespace of its own (inherited by lazyfs and the
  // servers), so that even a test killed on timeout leaves no dead FUSE mount behind: the
  // namespace, and its mounts, go with its last process.
  static void SetUpTestSuite() {
    if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr)) {
      std::cerr << "no private mount namespace (" << strerror(errno)
                << "); lazyfs mounts in the shared one\n";
    }
  }

  // Starts lazyfs and a server on it, runs 16 writers until both `min_acks` writes are
  // acknowledged and `min_duration` has passed, cuts the power (in `order`) while they are
  // still writing, restarts the server on the backing directory and checks every acknowledged
  // write.
  void Run(const std::vector<std::string>& server_flags, int min_acks,
           std::chrono::milliseconds min_duration, CutOrder order, PowerLossRun* run) {
    std::string dir = TempDir("powerloss");
    std::string backing = dir + "/backing", mountpoint = dir + "/mnt";
    ASSERT_TRUE(std::filesystem::create_directories(backing));
    ASSERT_TRUE(std::filesystem::create_directories(mountpoint));
    LazyFsMount lazyfs(backing, mountpoint, dir + "/lazyfs.log");
    ASSERT_TRUE(lazyfs.WaitMounted()) << "lazyfs did not mount: " << lazyfs.Log();

    int port = FreePort();
    auto server = StartServer(port, mountpoint + "/data", dir + "/server.log", server_flags);
    ASSERT_TRUE(server) << ReadFile(dir + "/server.log");

    std::mutex mu;
    std::atomic<bool> stop{false};
    std::atomic<int> total{0};
    std::vector<std::thread> writers;
    for (int w = 0; w < 16; ++w) {
      writers.emplace_back([&, w] {
        httplib::Client cli("127.0.0.1", port);
        cli.set_connection_timeout(1, 0);
        cli.set_read_timeout(5, 0);
        cli.set_keep_alive(true);
        for (int i = 0; !stop; ++i) {
          // Each writer owns its names, so its acknowledgements of one name are in order.
          std::string name = "w" + std::to_string(w) + "-" + std::to_string(i % 40);
          // The sequence number makes every write a change (a no-op PUT writes nothing).
          Json body = {
              {"kind", "SecurityProfile"},
              {"metadata", {{"name", name}, {"annotations", {{"seq", std::to_string(i)}}}}},
              {"spec", {{"driver", "exec"}, {"isolation", "low"}}}};
          auto res = cli.Put("/v1/securityprofiles/" + name, body.dump(), "application/json");
          if (!res) break;  // the server is gone: this write was not acknowledged
          if (res->status != 200 && res->status != 201) continue;
          Json obj = Json::parse(res->body, nullptr, false);
          int64_t rv = std::stoll(obj["metadata"].value("resourceVersion", "0"));
          std::lock_guard<std::mutex> lock(mu);
          run->acked[name] = rv;
          run->max_acked_revision = std::max(run->max_acked_revision, rv);
          total++;
        }
      });
    }
    auto started = std::chrono::steady_clock::now();
    bool enough = WaitFor(
        [&] {
          return total >= min_acks && std::chrono::steady_clock::now() - started >= min_duration;
        },
        60s);

    // The power cut, with the writers still running.
    bool cut_seen = true;
    if (order == CutOrder::kKillThenCut) {
      // The server dies, then everything that was not synced goes. An fsync that lazyfs was
      // already serving completes (like a disk finishing a flush as the machine dies).
      server->Signal(SIGKILL);
      lazyfs.CutPower();
    } else {
      // The disk loses power while the server still runs: its next fsync fails (EIO), so what
      // it wrote since the last one is never acknowledged, and is dropped. Then it dies.
      lazyfs.CutPower();
      cut_seen = WaitFor([&] { return lazyfs.PowerIsCut(); }, 10s, 1ms);
      server->Signal(SIGKILL);
    }
    bool server_died = server->Wait(5s).has_value();
    bool lazyfs_exited = lazyfs.WaitExited();
    stop = true;
    for (auto& t : writers) t.join();
    ASSERT_TRUE(server_died);
    run->total_acks = total;
    run->lazyfs_log = lazyfs.Log();
    ASSERT_TRUE(enough) << "only " << total << " writes acknowledged; server log:\n"
                        << ReadFile(dir + "/server.log");
    ASSERT_TRUE(cut_seen && lazyfs_exited)
        << "lazyfs did not cut the power and exit: " << run->lazyfs_log;
    ASSERT_FALSE(lazyfs.Mounted());

    // After the power comes back: the same store, straight from the backing directory.
    int port2 = FreePort();
    server = StartServer(port2, backing + "/data", dir + "/server-after.log");
    ASSERT_TRUE(server) << ReadFile(dir + "/server-after.log");
    httplib::Client cli("127.0.0.1", port2);
    cli.set_keep_alive(true);
    cli.set_read_timeout(5, 0);
    for (const auto& [name, rv] : run->acked) {
      auto res = cli.Get("/v1/securityprofiles/" + name);
      ASSERT_TRUE(res) << "GET " << name << ": " << httplib::to_string(res.error());
      Json obj = Json::parse(res->body, nullptr, false);
      // A later write than the one acknowledged may have made it, too; an older one may not.
      if (res->status != 200 || std::stoll(obj["metadata"].value("resourceVersion", "0")) < rv) {
        run->missing.push_back(name + " (acknowledged at " + std::to_string(rv) +
                               ", after the power loss: " + res->body.substr(0, 200) + ")");
      }
    }
    auto [code, health] = HttpGet(port2, "/healthz");
    ASSERT_EQ(code, 200);
    run->revision_after = Json::parse(health).value("revision", int64_t{0});
    std::cout << run->total_acks << " writes acknowledged to " << run->acked.size()
              << " objects (max revision " << run->max_acked_revision << "); after the power loss "
              << run->missing.size() << " missing, store at revision " << run->revision_after
              << "\n"
              << run->lazyfs_log;
  }
};

TEST_F(PowerLoss, AcknowledgedWritesSurvivePowerLoss_SimulatedByLazyFs) {
  PowerLossRun run;
  Run({}, 200, 2s, CutOrder::kKillThenCut, &run);
  if (HasFatalFailure()) return;
  EXPECT_GT(run.acked.size(), 100u);
  EXPECT_TRUE(run.missing.empty())
      << run.missing.size() << " acknowledged writes lost, e.g. " << run.missing.front();
  EXPECT_GE(run.revision_after, run.max_acked_revision);
}

// The disk loses its unsynced data before the server dies: whatever the server wrote after its
// last completed fsync (writes in flight, never acknowledged) is dropped, and its later writes
// and fsyncs fail with EIO until it is killed.
TEST_F(PowerLoss, AcknowledgedWritesSurviveDiskLosingPowerFirst_SimulatedByLazyFs) {
  PowerLossRun run;
  Run({}, 200, 2s, CutOrder::kCutThenKill, &run);
  if (HasFatalFailure()) return;
  EXPECT_GT(run.acked.size(), 100u);
  EXPECT_TRUE(run.missing.empty())
      << run.missing.size() << " acknowledged writes lost, e.g. " << run.missing.front();
  EXPECT_GE(run.revision_after, run.max_acked_revision);
}

// Proves that lazyfs really loses unsynced data, so that the tests above could fail: with
// --unsafe-no-fsync RocksDB never syncs its WAL, and acknowledged writes vanish.
TEST_F(PowerLoss, UnsyncedAcknowledgementsAreLost_NegativeControl) {
  PowerLossRun run;
  Run({"--unsafe-no-fsync"}, 500, 0ms, CutOrder::kKillThenCut, &run);
  if (HasFatalFailure()) return;
  EXPECT_GE(run.total_acks, 500);
  EXPECT_FALSE(run.missing.empty()) << "no acknowledged write was lost without fsync: lazyfs "
                                       "did not simulate the power loss";
  EXPECT_LT(run.revision_after, run.max_acked_revision);
}

}  // namespace
}  // namespace mentat::e2e
