// The exec driver with real processes: args/env/cwd, captured logs, exit codes, stopping the
// whole process group, recovery by a new driver object, and refusing a recycled pid. Exec:
// commands in a running task's environment and directory, with pipes or a terminal, stdin,
// exit codes, and nothing left behind when a session is abandoned. Limits, for real through this
// host's cgroups (root): an OOM kill reported, pids.max, a daemonized grandchild killed on Stop
// (also after recovery), Stats, exec'd commands in the task's cgroup, and without usable cgroups
// a clear refusal of limits.
#include "runtimes/exec/exec_driver.h"
#include "runtimes/logs/log_testing.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "runtimes/exec/exec_session.h"
#include "runtimes/process_testing.h"

namespace mentat {
namespace {

using namespace std::chrono_literals;

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

class ExecDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") +
           "/exec-" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto d = ExecDriver::Create();
    ASSERT_TRUE(d);
    driver_ = std::move(*d);
  }
  void TearDown() override {
    // Every task's cgroup goes with it: nothing is left under /sys/fs/cgroup/*/mentat.
    if (driver_) {
      for (const auto& id : ids_) driver_->Destroy(id, /*force=*/true);
    }
  }
  TaskConfig Config(const std::string& id, const std::string& script) {
    ids_.push_back(id);
    TaskConfig c;
    c.id = id;
    c.command = "/bin/sh";
    c.args = {"-c", script};
    c.task_dir = dir_ + "/" + id;
    return c;
  }
  std::string dir_;
  std::vector<std::string> ids_;
  std::unique_ptr<ExecDriver> driver_;
};

TEST_F(ExecDriverTest, RunsWithArgsEnvCwdAndCapturesLogs) {
  TaskConfig c = Config("t1", "echo \"$GREETING from $(pwd)\"; echo oops >&2; exit 3");
  c.env = {{"GREETING", "hello"}};
  c.cwd = "/tmp";
  auto h = driver_->Start(c);
  ASSERT_TRUE(h) << h.error().ToString();
  auto exit = driver_->Wait("t1", 5s);
  ASSERT_TRUE(exit && exit->has_value());
  EXPECT_EQ((*exit)->exit_code, 3);
  EXPECT_EQ(Slurp(c.task_dir + "/stdout.log"), "hello from /tmp\n");
  EXPECT_EQ(Slurp(c.task_dir + "/stderr.log"), "oops\n");
  auto st = driver_->Inspect("t1");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->state, TaskState::kExited);
}

TEST_F(ExecDriverTest, OutputGoesThroughTheTasksLogRelayInOrderAcrossStreams) {
  // Each line once the relay has written the one before (the order the relay reads is the order
  // written; log_relay.h).
  TaskConfig c = Config("relayed", "");
  c.args[1] = "while [ ! -f go ]; do sleep 0.01; done; "
              "written() { until grep -qx \"$1\" \"$2\" 2>/dev/null; do :; done; }; "
              "i=0; while [ $i -lt 100 ]; do echo out$i; written out$i " + c.task_dir + "/stdout.log; "
              "echo err$i >&2; written err$i " + c.task_dir + "/stderr.log; i=$((i+1)); done; exit 1";
  c.cwd = dir_;
  c.env = {{"MENTAT_TASK_ID", "relayed"}};
  auto h = driver_->Start(c);
  ASSERT_TRUE(h) << h.error().ToString();
  ASSERT_TRUE(HasLogRelay(h->state)) << h->state.dump();
  const int relay = h->state["logRelayPid"];
  ASSERT_TRUE(Alive(relay));
  auto logs = driver_->Logs("relayed");
  ASSERT_TRUE(logs);
  EXPECT_TRUE(logs->self_indexed) << "the agent must not sample or rotate what the relay writes";
  // Not the task's: its environment (the orphan sweep goes by MENTAT_TASK_ID), its session,
  // its cgroup.
  EXPECT_EQ(Slurp("/proc/" + std::to_string(relay) + "/environ").find("MENTAT_TASK_ID"), std::string::npos);
  EXPECT_NE(::getsid(relay), ::getsid(0));
  if (h->state.contains("cgroup")) {
    EXPECT_EQ(Slurp("/proc/" + std::to_string(relay) + "/cgroup").find(h->state["cgroup"].get<std::string>()),
              std::string::npos);
  }
  std::ofstream(dir_ + "/go").put('\n');
  auto exit = driver_->Wait("relayed", 10s);
  ASSERT_TRUE(exit && exit->has_value());
  EXPECT_EQ((*exit)->exit_code, 1);
  // Reported once the relay has written the last words: complete as soon as the exit is known.
  EXPECT_FALSE(Alive(relay));
  EXPECT_EQ(MergedLines(c.task_dir), AlternatingLines(100));
  // A restart's relay appends to the same logs.
  auto again = driver_->Start(c);
  ASSERT_TRUE(again) << again.error().ToString();
  EXPECT_NE(again->state.value("logRelayPid", 0), relay);
  ASSERT_TRUE(driver_->Wait("relayed", 10s));
  EXPECT_EQ(MergedLines(c.task_dir).size(), 400u);
}

TEST_F(ExecDriverTest, WithoutARelayTheWorkloadWritesItsFilesAndTheAgentIndexes) {
  ExecDriverOptions o;
  o.log_relay = dir_ + "/no-such-log-relay";
  auto d = ExecDriver::Create(std::move(o));
  ASSERT_TRUE(d);
  TaskConfig c = Config("unrelayed", "echo out; echo err >&2");
  auto h = (*d)->Start(c);
  ASSERT_TRUE(h) << h.error().ToString();
  EXPECT_FALSE(HasLogRelay(h->state));
  auto logs = (*d)->Logs("unrelayed");
  ASSERT_TRUE(logs);
  EXPECT_FALSE(logs->self_indexed) << "the agent samples and rotates these";
  ASSERT_TRUE((*d)->Wait("unrelayed", 5s));
  EXPECT_EQ(Slurp(c.task_dir + "/stdout.log"), "out\n");
  EXPECT_EQ(Slurp(c.task_dir + "/stderr.log"), "err\n");
  ASSERT_TRUE((*d)->Destroy("unrelayed", true));
}

TEST_F(ExecDriverTest, DestroyKillsARelayThatADaemonOfTheTaskKeepsOpen) {
  // A grandchild that left the task's session keeps stdout open after the task exits: without
  // a cgroup to kill it, the relay would wait for it for ever.
  TaskConfig c = Config("lingering", "(setsid sleep 300 &); echo started");
  auto h = driver_->Start(c);
  ASSERT_TRUE(h) << h.error().ToString();
  const int relay = h->state.value("logRelayPid", 0);
  ASSERT_GT(relay, 0);
  ASSERT_TRUE(driver_->Wait("lingering", 10s));
  ASSERT_TRUE(driver_->Destroy("lingering", /*force=*/true));
  EXPECT_TRUE(WaitFor([&] { return !Alive(relay); }, 5s)) << "the relay outlived Destroy";
  EXPECT_EQ(Slurp(c.task_dir + "/stdout.log"), "started\n");
}

TEST_F(ExecDriverTest, ExitHandlerFiresOnExit) {
  std::atomic<int> code{-1};
  driver_->SetExitHandler([&](const std::string& id, const ExitResult& r) {
    if (id == "t2" && r.exit_code) code = *r.exit_code;
  });
  ASSERT_TRUE(driver_->Start(Config("t2", "exit 7")));
  EXPECT_TRUE(WaitFor([&] { return code == 7; }, 5s));
}

TEST_F(ExecDriverTest, StopKillsTheWholeProcessGroup) {
  // The shell starts a grandchild that ignores SIGTERM, and itself ignores it too.
  TaskConfig c = Config("t3", "trap '' TERM; sleep 300 & echo $! > grandchild; wait");
  c.cwd = dir_;
  auto h = driver_->Start(c);
  ASSERT_TRUE(h);
  ASSERT_TRUE(WaitFor([&] { return !Slurp(dir_ + "/grandchild").empty(); }, 5s));
  int grandchild = std::stoi(Slurp(dir_ + "/grandchild"));
  int pid = h->state["pid"];
  ASSERT_TRUE(Alive(pid));
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(driver_->Stop("t3", 300ms, SIGTERM));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_FALSE(Alive(pid));
  EXPECT_TRUE(WaitFor([&] { return !Alive(grandchild); }, 2s)) << "grandchild survived";
  ASSERT_TRUE(driver_->Destroy("t3", false));
  EXPECT_FALSE(driver_->Inspect("t3"));
}

TEST_F(ExecDriverTest, AMissingCommandIsAClearError) {
  TaskConfig c = Config("t4", "");
  c.command = "/no/such/binary";
  c.args = {};
  auto h = driver_->Start(c);
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().message().find("No such file or directory"), std::string::npos);
  TaskConfig bad_cwd = Config("t5", "true");
  bad_cwd.cwd = "/no/such/dir";
  auto h2 = driver_->Start(bad_cwd);
  ASSERT_FALSE(h2);
  EXPECT_NE(h2.error().message().find("/no/such/dir"), std::string::npos);
}

TEST_F(ExecDriverTest, ANewDriverRecoversARunningTaskWithoutRestartingIt) {
  auto h = driver_->Start(Config("t6", "sleep 300"));
  ASSERT_TRUE(h);
  int pid = h->state["pid"];
  driver_.reset();  // the agent went away; the task keeps running
  ASSERT_TRUE(Alive(pid));
  auto d = ExecDriver::Create();
  ASSERT_TRUE(d);
  driver_ = std::move(*d);
  auto handle = TaskHandle::FromJson(h->ToJson());  // as persisted and read back
  ASSERT_TRUE(handle);
  ASSERT_TRUE(driver_->Recover(*handle));
  auto st = driver_->Inspect("t6");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->pid, pid);
  EXPECT_EQ(st->state, TaskState::kRunning);
  // Its exit is still observed, though it is no longer our child.
  ASSERT_TRUE(driver_->Stop("t6", 1s, SIGTERM));
  EXPECT_FALSE(Alive(pid));
}

TEST_F(ExecDriverTest, RecoverRefusesAPidThatNowBelongsToAnotherProcess) {
  auto h = driver_->Start(Config("t7", "sleep 300"));
  ASSERT_TRUE(h);
  // Same pid, different start time: what a recycled pid looks like.
  TaskHandle forged = *h;
  forged.id = "t8";
  forged.state["startTicks"] = forged.state["startTicks"].get<uint64_t>() + 12345;
  auto st = driver_->Recover(forged);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), Code::kNotFound);
  EXPECT_FALSE(driver_->Inspect("t8"));
  EXPECT_FALSE(driver_->Signal("t8", SIGKILL)) << "must never signal a stranger";
  EXPECT_TRUE(Alive(h->state["pid"].get<int>()));
  ASSERT_TRUE(driver_->Stop("t7", 1s, SIGTERM));
}

TEST_F(ExecDriverTest, RecoverOfAnExitedTaskIsNotFound) {
  auto h = driver_->Start(Config("t9", "exit 0"));
  ASSERT_TRUE(h);
  ASSERT_TRUE(driver_->Wait("t9", 5s));
  auto st = driver_->Recover(*h);
  // Already tracked as exited: re-attaching is refused because the process is gone.
  EXPECT_FALSE(st);
}

// What an exec session printed, and how it ended.
struct Captured {
  std::mutex mu;
  std::string out, err;
  std::optional<ExitResult> exit;
  ExecCallbacks Callbacks() {
    return {[this](ExecStream s, std::string_view d) {
              std::lock_guard<std::mutex> lock(mu);
              (s == ExecStream::kStdout ? out : err).append(d);
            },
            [this](const ExitResult& r) {
              std::lock_guard<std::mutex> lock(mu);
              exit = r;
            }};
  }
  std::string Out() {
    std::lock_guard<std::mutex> lock(mu);
    return out;
  }
};

class ExecSessionTest : public ExecDriverTest {
 protected:
  void SetUp() override {
    ExecDriverTest::SetUp();
    TaskConfig c = Config("svc", "sleep 300");
    c.env = {{"SOME_ENV", "from-the-task"}};
    c.cwd = dir_;
    auto h = driver_->Start(c);
    ASSERT_TRUE(h) << h.error().ToString();
    task_pid_ = h->state["pid"];
  }
  void TearDown() override {
    driver_->Stop("svc", 1s, SIGKILL);
    ExecDriverTest::TearDown();
  }
  int task_pid_ = 0;
};

TEST_F(ExecSessionTest, RunsInTheTasksEnvAndDirectoryAndReportsTheExitCode) {
  Captured c;
  ExecOptions o;
  o.command = {"sh", "-c", "echo \"$SOME_ENV in $(pwd)\"; echo to-stderr >&2; exit 7"};
  auto s = driver_->Exec("svc", o, c.Callbacks());
  ASSERT_TRUE(s) << s.error().ToString();
  auto exit = (*s)->Wait(5s);
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->exit_code, 7);
  std::lock_guard<std::mutex> lock(c.mu);
  EXPECT_EQ(c.out, "from-the-task in " + dir_ + "\n");
  EXPECT_EQ(c.err, "to-stderr\n");
  ASSERT_TRUE(c.exit) << "the exit callback runs before Wait returns";
  EXPECT_EQ(c.exit->exit_code, 7);
}

TEST_F(ExecSessionTest, StdinRoundTripsAndEndsWithCloseStdin) {
  Captured c;
  ExecOptions o;
  o.command = {"cat"};
  o.stdin = true;
  auto s = driver_->Exec("svc", o, c.Callbacks());
  ASSERT_TRUE(s) << s.error().ToString();
  ASSERT_TRUE((*s)->WriteStdin("line one\n"));
  ASSERT_TRUE(WaitFor([&] { return c.Out() == "line one\n"; }, 5s)) << c.Out();
  std::string big(1 << 20, 'x');  // more than a pipe holds: written as cat drains it
  ASSERT_TRUE((*s)->WriteStdin(big));
  ASSERT_TRUE((*s)->CloseStdin());
  auto exit = (*s)->Wait(10s);
  ASSERT_TRUE(exit) << "cat did not see the end of its input";
  EXPECT_EQ(exit->exit_code, 0);
  EXPECT_EQ(c.Out().size(), 9u + big.size());
  EXPECT_FALSE((*s)->WriteStdin("late")) << "stdin is closed";
}

TEST_F(ExecSessionTest, WithoutStdinTheCommandReadsNothing) {
  Captured c;
  ExecOptions o;
  o.command = {"cat"};
  auto s = driver_->Exec("svc", o, c.Callbacks());
  ASSERT_TRUE(s);
  auto exit = (*s)->Wait(5s);
  ASSERT_TRUE(exit) << "cat on /dev/null ends at once";
  EXPECT_EQ(exit->exit_code, 0);
  EXPECT_FALSE((*s)->WriteStdin("x"));
}

TEST_F(ExecSessionTest, ATerminalHasAPtsPathItsSizeAndResizes) {
  Captured c;
  ExecOptions o;
  o.command = {"sh", "-c", "tty; stty size; read line; stty size; echo \"got $line\"; echo $SOME_ENV"};
  o.tty = true;
  o.stdin = true;
  o.rows = 33;
  o.cols = 101;
  auto s = driver_->Exec("svc", o, c.Callbacks());
  ASSERT_TRUE(s) << s.error().ToString();
  ASSERT_TRUE(WaitFor([&] { return c.Out().find("33 101") != std::string::npos; }, 5s)) << c.Out();
  EXPECT_EQ(c.Out().rfind("/dev/pts/", 0), 0u) << c.Out();
  ASSERT_TRUE((*s)->Resize(40, 120));
  ASSERT_TRUE((*s)->WriteStdin("hello\r"));  // Enter on a terminal
  auto exit = (*s)->Wait(5s);
  ASSERT_TRUE(exit) << c.Out();
  EXPECT_EQ(exit->exit_code, 0);
  std::string out = c.Out();
  EXPECT_NE(out.find("40 120"), std::string::npos) << out;
  EXPECT_NE(out.find("got hello"), std::string::npos) << out;
  EXPECT_NE(out.find("from-the-task"), std::string::npos) << out;
  EXPECT_NE(out.find("\r\n"), std::string::npos) << "a terminal translates newlines";
  std::lock_guard<std::mutex> lock(c.mu);
  EXPECT_EQ(c.err, "") << "a terminal has one output stream";
}

TEST_F(ExecSessionTest, AnAbandonedSessionLeavesNothingRunning) {
  Captured c;
  ExecOptions o;
  o.command = {"sh", "-c", "sleep 300 & echo $!; wait"};
  auto s = driver_->Exec("svc", o, c.Callbacks());
  ASSERT_TRUE(s);
  ASSERT_TRUE(WaitFor([&] { return c.Out().find('\n') != std::string::npos; }, 5s));
  int child = std::stoi(c.Out());
  ASSERT_TRUE(Alive(child));
  s->reset();  // abandoned: killed and reaped
  EXPECT_TRUE(WaitFor([&] { return !Alive(child); }, 2s)) << "the session's process group survived";
  EXPECT_TRUE(Alive(task_pid_)) << "the task itself is not touched";
}

TEST_F(ExecSessionTest, ErrorsNameTheProblem) {
  Captured c;
  ExecOptions o;
  o.command = {"/no/such/tool"};
  auto s = driver_->Exec("svc", o, c.Callbacks());
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
  EXPECT_NE(s.error().message().find("No such file or directory"), std::string::npos);
  o.command = {};
  EXPECT_FALSE(driver_->Exec("svc", o, c.Callbacks()));
  o.command = {"true"};
  auto missing = driver_->Exec("nope", o, c.Callbacks());
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Code::kNotFound);
  o.command = {"true"};
  ASSERT_TRUE(driver_->Stop("svc", 1s, SIGKILL));
  auto stopped = driver_->Exec("svc", o, c.Callbacks());
  ASSERT_FALSE(stopped);
  EXPECT_EQ(stopped.error().code(), Code::kNotFound);
}

TEST_F(ExecDriverTest, AMemoryHogIsOomKilledAndReportedSo) {
  TaskConfig c = Config("oom", "");
  // dd reads into one 256 MiB buffer: far over 32 MiB, and no swap to hide in.
  c.command = "/bin/dd";
  c.args = {"if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"};
  c.spec = {{"resources", {{"memory_mb", 32}}}};
  std::atomic<bool> handler_saw_oom{false};
  driver_->SetExitHandler([&](const std::string& id, const ExitResult& r) {
    if (id == "oom") handler_saw_oom = r.oom_killed;
  });
  auto h = driver_->Start(c);
  ASSERT_TRUE(h) << h.error().ToString();
  ASSERT_TRUE(h->state.contains("cgroup"));
  auto exit = driver_->Wait("oom", 10s);
  ASSERT_TRUE(exit && exit->has_value());
  EXPECT_TRUE((*exit)->oom_killed) << (*exit)->message;
  EXPECT_EQ((*exit)->signal, SIGKILL);
  EXPECT_EQ((*exit)->message,
            "OOM-killed: exceeded its 32 MiB memory limit (killed by signal Killed)");
  // The handler runs after Wait's waiters are woken, on the driver's reaper thread.
  EXPECT_TRUE(WaitFor([&] { return handler_saw_oom.load(); }, 5s));
}

TEST_F(ExecDriverTest, AnExitWithoutOomIsNotReportedAsOne) {
  TaskConfig c = Config("fits", "exit 0");
  c.spec = {{"resources", {{"memory_mb", 64}, {"cpu_percent", 50}, {"pids", 32}}}};
  ASSERT_TRUE(driver_->Start(c));
  auto exit = driver_->Wait("fits", 5s);
  ASSERT_TRUE(exit && exit->has_value());
  EXPECT_FALSE((*exit)->oom_killed);
  EXPECT_EQ((*exit)->exit_code, 0);
}

TEST_F(ExecDriverTest, APidsLimitStopsForksAndTheExitSaysSo) {
  // A fork bomb in slow motion: the shell and four sleeps fill 5 pids; the next fork fails,
  // which a POSIX shell (dash) treats as fatal.
  TaskConfig c = Config("pids", "i=0; while [ $i -lt 20 ]; do sleep 300 & i=$((i+1)); done; "
                                "echo done; wait");
  c.spec = {{"resources", {{"pids", 5}}}};
  auto h = driver_->Start(c);
  ASSERT_TRUE(h) << h.error().ToString();
  auto exit = driver_->Wait("pids", 5s);
  ASSERT_TRUE(exit && exit->has_value());
  EXPECT_EQ((*exit)->exit_code, 2);
  EXPECT_EQ((*exit)->message, "exited with code 2; its pids limit refused 1 fork(s)");
  EXPECT_NE(Slurp(c.task_dir + "/stderr.log").find("Cannot fork"), std::string::npos)
      << Slurp(c.task_dir + "/stderr.log");
  EXPECT_EQ(Slurp(c.task_dir + "/stdout.log"), "");
  auto stats = driver_->Stats("pids");
  ASSERT_TRUE(stats) << stats.error().ToString();
  EXPECT_EQ(stats->pids_limit_hits, 1u);
  // pids.current drops once the killed sleeps are reaped (by init: they are orphans).
  EXPECT_TRUE(WaitFor([&] { return driver_->Stats("pids")->pids == 0; }, 5s))
      << "the sleeps went with the shell: " << driver_->Stats("pids")->pids;
}

TEST_F(ExecDriverTest, StopKillsADaemonizedGrandchildEvenAfterRecovery) {
  // Double fork and setsid: the daemon leaves the task's session and process group, and is
  // reparented away from it. Only the cgroup still holds it.
  TaskConfig c = Config("daemon", "(setsid sh -c 'sleep 300 & echo $! > daemon.pid' &); "
                                  "exec sleep 300");
  c.cwd = dir_;
  c.spec = {{"resources", {{"memory_mb", 64}}}};
  auto h = driver_->Start(c);
  ASSERT_TRUE(h) << h.error().ToString();
  ASSERT_TRUE(WaitFor(
      [&] { return Slurp(dir_ + "/daemon.pid").find('\n') != std::string::npos; }, 5s));
  int daemon = std::stoi(Slurp(dir_ + "/daemon.pid"));
  int pid = h->state["pid"];
  ASSERT_TRUE(Alive(daemon));
  EXPECT_NE(::getsid(daemon), ::getsid(pid)) << "the daemon escaped the task's session";
  EXPECT_NE(::getpgid(daemon), pid) << "and its process group";
  EXPECT_EQ(CgroupOf(daemon, "memory"), "/" + h->state["cgroup"].get<std::string>());

  // A new driver (an agent restart) re-opens the cgroup from the handle.
  driver_ = std::move(*ExecDriver::Create());
  ASSERT_TRUE(driver_->Recover(*TaskHandle::FromJson(h->ToJson())));
  ASSERT_TRUE(driver_->Stop("daemon", 300ms, SIGTERM));
  EXPECT_FALSE(Alive(pid));
  EXPECT_TRUE(WaitFor([&] { return !Alive(daemon); }, 2s)) << "the daemon survived Stop";
  ASSERT_TRUE(driver_->Destroy("daemon", false));
  std::string dir = "/sys/fs/cgroup/memory/" + h->state["cgroup"].get<std::string>();
  EXPECT_NE(::access(dir.c_str(), F_OK), 0) << dir << " is left behind";
}

TEST_F(ExecDriverTest, RecoveringATaskThatEndedUnwatchedRemovesItsCgroup) {
  // exec: dash forks a lone command, and a SIGKILLed shell would leave its sleep in the group.
  auto h = driver_->Start(Config("gone", "exec sleep 300"));
  ASSERT_TRUE(h) << h.error().ToString();
  int pid = h->state["pid"];
  std::string dir = "/sys/fs/cgroup/memory/" + h->state["cgroup"].get<std::string>();
  driver_.reset();  // the agent went away...
  ASSERT_EQ(::kill(pid, SIGKILL), 0);  // ...and the task ended meanwhile
  ASSERT_TRUE(WaitFor([&] { return !Alive(pid); }, 5s));
  // With the driver gone nobody reaps it (this test process is its parent, as the agent is), and
  // a zombie may stay listed in the group: reap it, as init does once the agent has exited.
  ::waitpid(pid, nullptr, 0);
  ASSERT_TRUE(WaitFor([&] {
    std::ifstream procs(dir + "/cgroup.procs");
    std::string line;
    return !std::getline(procs, line);
  }, 5s)) << dir << " still has a member";
  ASSERT_EQ(::access(dir.c_str(), F_OK), 0) << "nobody has removed it yet";
  driver_ = std::move(*ExecDriver::Create());
  auto st = driver_->Recover(*TaskHandle::FromJson(h->ToJson()));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), Code::kNotFound);
  EXPECT_NE(::access(dir.c_str(), F_OK), 0) << dir << " outlived its task";
}

TEST_F(ExecDriverTest, StatsReadsTheTasksMemoryAndPids) {
  // The shell holds ~8 MB in a variable while it sleeps.
  TaskConfig c = Config("stats", "x=$(head -c 8000000 /dev/zero | tr '\\0' a); sleep 300");
  auto h = driver_->Start(c);
  ASSERT_TRUE(h) << h.error().ToString();
  std::optional<TaskStats> last;
  EXPECT_TRUE(WaitFor([&] {
    auto s = driver_->Stats("stats");
    if (s) last = *s;
    return s && s->memory_bytes > 8000000 && s->pids >= 2;
  }, 5s)) << (last ? std::to_string(last->memory_bytes) + " bytes, " +
                           std::to_string(last->pids) + " pids"
                     : "no stats");
  EXPECT_GE(last->memory_peak_bytes, last->memory_bytes);
  EXPECT_GT(last->cpu_usage_ns, 0u);
  EXPECT_EQ(driver_->Stats("nope").error().code(), Code::kNotFound);
  ASSERT_TRUE(driver_->Stop("stats", 1s, SIGTERM));
}

TEST_F(ExecSessionTest, AnExecdCommandRunsInTheTasksCgroup) {
  Captured c;
  ExecOptions o;
  o.command = {"sh", "-c", "cat /proc/self/cgroup"};
  auto s = driver_->Exec("svc", o, c.Callbacks());
  ASSERT_TRUE(s) << s.error().ToString();
  ASSERT_TRUE((*s)->Wait(5s));
  std::string want = CgroupOf(task_pid_, "memory");
  ASSERT_NE(want.find("/mentat/svc-"), std::string::npos) << want;
  EXPECT_NE(c.Out().find("memory:" + want + "\n"), std::string::npos) << c.Out();
}

TEST_F(ExecDriverTest, WithoutUsableCgroupsLimitsAreRefusedByNameAndTasksStillRun) {
  // What a non-root agent sees: no hierarchy it can write to.
  ExecDriverOptions o;
  o.cgroups = CgroupHost::V2(dir_ + "/no-cgroup-here");
  driver_ = std::move(*ExecDriver::Create(std::move(o)));
  TaskConfig limited = Config("limited", "exit 0");
  limited.spec = {{"resources", {{"memory_mb", 64}}}};
  auto h = driver_->Start(limited);
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code(), Code::kFailedPrecondition);
  EXPECT_EQ(h.error().message(),
            "resources.memory_mb: cannot enforce: " + dir_ + "/no-cgroup-here does not exist");
  TaskConfig plain = Config("plain", "exit 4");
  ASSERT_TRUE(driver_->Start(plain));
  auto exit = driver_->Wait("plain", 5s);
  ASSERT_TRUE(exit && exit->has_value());
  EXPECT_EQ((*exit)->exit_code, 4);
  auto stats = driver_->Stats("plain");
  ASSERT_FALSE(stats);
  EXPECT_EQ(stats.error().code(), Code::kFailedPrecondition);
  Json fp = driver_->Fingerprint();
  EXPECT_EQ(fp["cgroups"]["usable"], false);
  EXPECT_NE(fp["detail"].get<std::string>().find("without cgroups"), std::string::npos)
      << fp.dump();
}

TEST_F(ExecDriverTest, FingerprintSaysWhichCgroupsWork) {
  Json fp = driver_->Fingerprint();
  EXPECT_EQ(fp["cgroups"]["version"], "v1") << fp.dump();
  EXPECT_EQ(fp["cgroups"]["usable"], true);
  EXPECT_EQ(fp["cgroups"]["controllers"]["memory"], "ok");
  EXPECT_EQ(fp["cgroups"]["killAll"], "pids.max 0 and a signal loop");
}

TEST(LimitsFromSpecTest, TurnsResourcesIntoLimitsAndNamesWhatItCannotConvert) {
  auto l =
      LimitsFromSpec({{"resources", {{"memory_mb", 64}, {"cpu_percent", 50}, {"pids", 9}}}}, 0);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->memory_bytes, int64_t{64} << 20);
  EXPECT_EQ(l->cpu_percent, 50);
  EXPECT_EQ(l->pids_max, 9);
  auto mhz = LimitsFromSpec({{"resources", {{"cpu_mhz", 1000}}}}, 2000);
  ASSERT_TRUE(mhz);
  EXPECT_EQ(mhz->cpu_percent, 50) << "1000 MHz of a 2000 MHz core";
  auto unknown = LimitsFromSpec({{"resources", {{"cpu_mhz", 1000}}}}, 0);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().message().rfind("resources.cpu_mhz: cannot enforce", 0), 0u);
  auto none = LimitsFromSpec(Json::object(), 0);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->memory_bytes || none->cpu_percent || none->pids_max);
}

TEST_F(ExecDriverTest, SweepRemovesOnlyEmptyGroupsNobodyOwns) {
  ExecDriverOptions o;
  o.cgroup_parent = "mentat-sweep-test";
  o.cgroups = CgroupHost::Probe();
  CgroupHost* host = o.cgroups.get();
  auto d = ExecDriver::Create(std::move(o));
  ASSERT_TRUE(d);
  driver_ = std::move(*d);
  auto h = driver_->Start(Config("owned", "exec sleep 300"));
  ASSERT_TRUE(h) << h.error().ToString();
  // Left behind by a crashed agent: one empty, one with a process still in it.
  auto stale = host->Create("mentat-sweep-test/stale-1", {});
  ASSERT_TRUE(stale) << stale.error().ToString();
  auto busy = host->Create("mentat-sweep-test/busy-1", {});
  ASSERT_TRUE(busy);
  pid_t sleeper = fork();
  if (sleeper == 0) {
    execl("/bin/sleep", "sleep", "300", nullptr);
    _exit(127);
  }
  ASSERT_TRUE((*busy)->AddProcess(sleeper));
  // Too young to be swept: a group another agent has just made.
  EXPECT_EQ(driver_->SweepEmptyGroups(std::chrono::seconds(3600)), 0);
  EXPECT_EQ(driver_->SweepEmptyGroups(std::chrono::seconds(0)), 1);
  EXPECT_FALSE(host->Open("mentat-sweep-test/stale-1")) << "the empty orphan group stays";
  EXPECT_TRUE(host->Open("mentat-sweep-test/busy-1")) << "a group with a process in it is not the sweep's";
  EXPECT_TRUE(host->Open(h->state["cgroup"].get<std::string>())) << "the driver's own task's group went";
  ::kill(sleeper, SIGKILL);
  ::waitpid(sleeper, nullptr, 0);
  EXPECT_TRUE(WaitFor([&] { return (*busy)->Pids() && (*busy)->Pids()->empty(); }, 5s));
  EXPECT_TRUE((*busy)->Destroy());
}

TEST_F(ExecDriverTest, RunsAsTheUserTheSpecNames) {
  TaskConfig c = Config("nobody", "id -u; id -g; touch /root/exec-user-test 2>/dev/null || echo denied");
  c.spec = {{"user", "nobody"}};
  ASSERT_TRUE(driver_->Start(c));
  auto exit = driver_->Wait("nobody", 10s);
  ASSERT_TRUE(exit && exit->has_value());
  EXPECT_EQ((*exit)->exit_code, 0) << (*exit)->message;
  EXPECT_EQ(Slurp(dir_ + "/nobody/stdout.log"), "65534\n65534\ndenied\n");

  TaskConfig n = Config("numeric", "id -u; id -g");
  n.spec = {{"user", "4242:4343"}};
  ASSERT_TRUE(driver_->Start(n));
  exit = driver_->Wait("numeric", 10s);
  ASSERT_TRUE(exit && exit->has_value());
  EXPECT_EQ(Slurp(dir_ + "/numeric/stdout.log"), "4242\n4343\n");

  TaskConfig bad = Config("ghost", "true");
  bad.spec = {{"user", "no-such-user"}};
  auto h = driver_->Start(bad);
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code(), Code::kInvalidArgument);
  EXPECT_NE(h.error().message().find("user: there is no user \"no-such-user\""), std::string::npos)
      << h.error().message();
}

}  // namespace
}  // namespace mentat
