// The Engine API client against the real dockerd (scripts/dockerd.sh starts it): version
// negotiation, a container's life (create with labels, start, inspect, list by label, logs
// demultiplexed, exec, stats, kill, remove), the events stream, and a socket nobody answers.
#include "runtimes/docker/engine_client.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "runtimes/docker/docker_testing.h"

namespace mentat::docker {
namespace {

using namespace std::chrono_literals;

template <class F>
bool WaitUntil(F f, std::chrono::milliseconds d) {
  auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return f();
}

class EngineClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto st = EnsureDockerd();
    ASSERT_TRUE(st) << st.error().message();
    name_ = "mentat-engine-test-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }
  void TearDown() override { client_.RemoveContainer(name_, true); }
  EngineClient client_;
  std::string name_;
};

TEST(StreamDemuxerTest, SplitsFramesAcrossArbitraryReads) {
  std::string out, err;
  int ends = 0;
  StreamDemuxer d([&](int s, std::string_view v) { (s == 1 ? out : err).append(v); }, [&](int) { ends++; });
  std::string bytes;
  auto frame = [&](int s, const std::string& p) {
    bytes += std::string{static_cast<char>(s), 0, 0, 0};
    uint32_t n = p.size();
    bytes += std::string{static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                         static_cast<char>(n)};
    bytes += p;
  };
  frame(1, "hello ");
  frame(2, "oops\n");
  frame(1, std::string(70000, 'x'));
  for (size_t i = 0; i < bytes.size(); i += 3) d.Feed(std::string_view(bytes).substr(i, 3));
  EXPECT_EQ(out, "hello " + std::string(70000, 'x'));
  EXPECT_EQ(err, "oops\n");
  EXPECT_EQ(ends, 3);
}

TEST_F(EngineClientTest, NegotiatesTheVersionAndUsesVersionedPaths) {
  auto v = client_.Version();
  ASSERT_TRUE(v) << v.error().message();
  EXPECT_FALSE(v->value("Version", "").empty());
  auto api = client_.Api();
  ASSERT_TRUE(api);
  EXPECT_EQ(*api, "1.41") << "dockerd 20.10 speaks 1.41, the client's newest";
  auto path = client_.Path("/containers/json");
  ASSERT_TRUE(path);
  EXPECT_EQ(*path, "/v1.41/containers/json");
}

TEST_F(EngineClientTest, RunsAContainerThroughItsLife) {
  Json cfg = {{"Image", kBusyboxImage},
              {"Cmd", {"sh", "-c", "echo to-out; echo to-err >&2; trap 'exit 5' USR1; while :; do sleep 0.05; done"}},
              {"Labels", {{"mentat.test", name_}}},
              {"HostConfig", {{"Init", true}}}};
  auto id = client_.CreateContainer(name_, cfg);
  ASSERT_TRUE(id) << id.error().message();
  // The same name again is a conflict carrying Docker's message.
  auto again = client_.CreateContainer(name_, cfg);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), Code::kAlreadyExists);
  EXPECT_NE(again.error().message().find("already in use"), std::string::npos) << again.error().message();

  ASSERT_TRUE(client_.StartContainer(*id));
  auto info = client_.InspectContainer(*id);
  ASSERT_TRUE(info);
  EXPECT_TRUE((*info)["State"].value("Running", false));
  EXPECT_GT((*info)["State"].value("Pid", 0), 0);

  auto list = client_.ListContainers({"mentat.test=" + name_});
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0]["Id"], *id);
  auto none = client_.ListContainers({"mentat.test=nobody-" + name_});
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());

  std::string out, err;
  ASSERT_TRUE(WaitUntil([&] {
    out.clear();
    err.clear();
    auto st = client_.Logs(*id, {}, [&](int s, std::string_view d) { (s == 1 ? out : err).append(d); });
    return st && out == "to-out\n" && err == "to-err\n";
  }, 10s)) << out << "|" << err;

  // exec with its output demultiplexed and its exit code.
  auto exec = client_.ExecCreate(*id, {{"AttachStdout", true}, {"AttachStderr", true},
                                       {"Cmd", {"sh", "-c", "echo x-out; echo x-err >&2; exit 3"}}});
  ASSERT_TRUE(exec) << exec.error().message();
  auto path = client_.Path("/exec/" + *exec + "/start");
  ASSERT_TRUE(path);
  auto stream = HijackedStream::Open(&client_, *path, R"({"Detach":false,"Tty":false})");
  ASSERT_TRUE(stream) << stream.error().message();
  std::string xout, xerr;
  StreamDemuxer demux([&](int s, std::string_view d) { (s == 1 ? xout : xerr).append(d); });
  for (;;) {
    auto chunk = (*stream)->Read(5s);
    ASSERT_TRUE(chunk) << "no output";
    if (chunk->empty()) break;
    demux.Feed(*chunk);
  }
  EXPECT_EQ(xout, "x-out\n");
  EXPECT_EQ(xerr, "x-err\n");
  ASSERT_TRUE(WaitUntil([&] {
    auto ei = client_.ExecInspect(*exec);
    return ei && !ei->value("Running", true) && ei->value("ExitCode", -1) == 3;
  }, 5s));

  auto stats = client_.Stats(*id);
  ASSERT_TRUE(stats) << stats.error().message();
  EXPECT_GT((*stats)["memory_stats"].value("usage", 0), 0);
  EXPECT_GE((*stats)["pids_stats"].value("current", 0), 2);

  // The die event arrives on the stream, with no polling.
  std::atomic<bool> cancel{false}, died{false};
  std::thread watcher([&] {
    client_.Events({{"type", {"container"}}, {"event", {"die"}}}, [&](const Json& e) {
      if (e["Actor"].value("ID", "") == *id) {
        died = true;
        cancel = true;
      }
    }, &cancel);
  });
  std::this_thread::sleep_for(200ms);  // the stream is open before the kill (no replay asked)
  ASSERT_TRUE(client_.KillContainer(*id, SIGUSR1));
  EXPECT_TRUE(WaitUntil([&] { return died.load(); }, 10s));
  cancel = true;
  watcher.join();
  info = client_.InspectContainer(*id);
  ASSERT_TRUE(info);
  EXPECT_EQ((*info)["State"].value("ExitCode", -1), 5);

  ASSERT_TRUE(client_.RemoveContainer(*id, false));
  auto gone = client_.InspectContainer(*id);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code(), Code::kNotFound);
  EXPECT_NE(gone.error().message().find("No such container"), std::string::npos) << gone.error().message();
}

TEST_F(EngineClientTest, AnUnknownImageIsNotFoundWithDockersMessage) {
  auto id = client_.CreateContainer(name_, {{"Image", "local/no-such-image:0"}});
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error().code(), Code::kNotFound);
  EXPECT_NE(id.error().message().find("No such image"), std::string::npos) << id.error().message();
}

TEST(EngineClientDownTest, ASocketNobodyAnswersIsUnavailable) {
  EngineClient c("/tmp/mentat-no-dockerd-" + std::to_string(getpid()) + ".sock");
  auto v = c.Version();
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code(), Code::kUnavailable);
  EXPECT_NE(v.error().message().find("dockerd is not reachable at /tmp/mentat-no-dockerd-"), std::string::npos)
      << v.error().message();
  // The watcher keeps retrying without crashing, and says it is not connected.
  int reconnects = 0;
  {
    EventWatcher w(&c, [](const Json&) {}, [&] { reconnects++; });
    std::this_thread::sleep_for(300ms);
    EXPECT_FALSE(w.connected());
  }
  EXPECT_EQ(reconnects, 0);
}

}  // namespace
}  // namespace mentat::docker
