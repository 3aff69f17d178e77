// The exec driver with real processes: args/env/cwd, captured logs, exit codes, stopping the
// whole process group, recovery by a new driver object, and refusing a recycled pid. Exec:
// commands in a running task's environment and directory, with pipes or a terminal, stdin,
// exit codes, and nothing left behind when a session is abandoned.
#include "runtimes/exec/exec_driver.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "runtimes/exec/exec_session.h"

namespace mentat {
namespace {

using namespace std::chrono_literals;

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool Alive(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(f, stat)) return false;
  return stat[stat.rfind(')') + 2] != 'Z';
}

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds deadline) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return cond();
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
  TaskConfig Config(const std::string& id, const std::string& script) {
    TaskConfig c;
    c.id = id;
    c.command = "/bin/sh";
    c.args = {"-c", script};
    c.task_dir = dir_ + "/" + id;
    return c;
  }
  std::string dir_;
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
  void TearDown() override { driver_->Stop("svc", 1s, SIGKILL); }
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

}  // namespace
}  // namespace mentat
