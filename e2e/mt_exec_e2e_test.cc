// mt exec against a real server and agent running an exec-driver service: the task's
// environment and the command's exit code, stdin with -i, a terminal with -t (mt itself under a
// pty: raw mode, the size, a resize, and the terminal restored after), the agent's 400s (relayed
// by the server, as all of exec is), an unknown allocation, and, with tokens, a read-only caller
// refused (403, exit 4) and a session usable by its creator's token only.
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

const char* kService =
    "name: svc\ndriver: exec\ncommand: /bin/sleep\nargs: [\"600\"]\nenv: {SOME_ENV: value-from-the-manifest}\n";

class MtExecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("mt-exec");
    port_ = FreePort();
    server_ = StartServer(port_, dir_ + "/data", dir_ + "/server.log", {"--dev", "--node-name", "exec-node"});
    ASSERT_TRUE(server_) << ReadFile(dir_ + "/server.log");
    env_ = {"MENTAT_ADDR=http://127.0.0.1:" + std::to_string(port_), "HOME=" + dir_};
    WriteFile(dir_ + "/svc.yaml", kService);
    ASSERT_EQ(Mt({"apply", "-f", dir_ + "/svc.yaml"}).exit_code, 0);
    ASSERT_EQ(Mt({"wait", "--for=condition=Ready", "service/svc", "--timeout=30s"}).exit_code, 0);
  }
  CommandResult Mt(std::vector<std::string> args, std::optional<std::string> input = std::nullopt) {
    args.insert(args.begin(), Runfile("cmd/mt/mt"));
    return RunCommandWithInput(args, input, env_);
  }
  std::string dir_;
  int port_ = 0;
  std::unique_ptr<Process> server_;
  std::vector<std::string> env_;
};

TEST_F(MtExecTest, RunsInTheTasksEnvironmentAndExitsWithTheCommandsCode) {
  auto r = Mt({"exec", "svc", "--", "sh", "-c", "echo $SOME_ENV; echo to-stderr >&2; exit 7"});
  EXPECT_EQ(r.exit_code, 7) << r.err;
  EXPECT_EQ(r.out, "value-from-the-manifest\n");
  EXPECT_NE(r.err.find("to-stderr\n"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("allocation svc-0 of service svc"), std::string::npos) << "which allocation: " << r.err;
  // By allocation name: no notice, exit 0.
  auto direct = Mt({"exec", "svc-0", "--", "true"});
  EXPECT_EQ(direct.exit_code, 0) << direct.err;
  EXPECT_EQ(direct.err, "");
}

TEST_F(MtExecTest, StdinIsForwardedOnlyWithDashI) {
  std::string input = "line one\nline two\n";
  for (int i = 0; i < 2000; ++i) input += "more input " + std::to_string(i) + "\n";  // > a pipe's worth
  auto r = Mt({"exec", "-i", "svc-0", "--", "cat"}, input);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, input);
  auto without = Mt({"exec", "svc-0", "--", "cat"}, input);
  EXPECT_EQ(without.exit_code, 0) << without.err;
  EXPECT_EQ(without.out, "") << "without -i the command's stdin is empty";
}

TEST_F(MtExecTest, UnknownTargetsAndBadRequestsAreClearErrors) {
  auto r = Mt({"exec", "nope", "--", "true"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no allocation or service named \"nope\" in namespace default"), std::string::npos)
      << r.err;
  auto missing = Mt({"exec", "svc-0", "--", "/no/such/tool"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("/no/such/tool"), std::string::npos) << missing.err;
  auto usage = Mt({"exec", "svc-0"});
  EXPECT_EQ(usage.exit_code, 2) << usage.err;

  // The agent names the field at fault; the server passes its answer on.
  httplib::Client cli("127.0.0.1", port_);
  struct Case {
    std::string path, body, field;
    int code;
  };
  for (const Case& c : std::vector<Case>{
           {"/v1/allocations/svc-0/exec", R"({"command":[]})", "command", 400},
           {"/v1/allocations/svc-0/exec", R"({"command":"ls"})", "command", 400},
           {"/v1/allocations/svc-0/exec", R"({"command":["ls"],"tty":"yes"})", "tty", 400},
           {"/v1/allocations/svc-0/exec", R"({"command":["ls"],"rows":0})", "rows", 400},
           {"/v1/allocations/svc-0/exec", R"({"command":["ls"],"colour":1})", "colour", 400},
           {"/v1/allocations/svc-0/exec", "not json", "", 400},
           {"/v1/allocations/nope/exec", R"({"command":["ls"]})", "", 404},
           {"/v1/exec/0123/input", "x", "", 404},
       }) {
    auto res = cli.Post(c.path, c.body, "application/json");
    ASSERT_TRUE(res) << c.path;
    EXPECT_EQ(res->status, c.code) << c.body << ": " << res->body;
    if (!c.field.empty()) {
      auto details = Json::parse(res->body)["details"];
      ASSERT_FALSE(details.empty()) << res->body;
      EXPECT_EQ(details[0]["field"], c.field) << res->body;
    }
  }
}

// Runs mt under a pseudo-terminal of `rows` x `cols`; `during` gets the master while it runs.
struct PtyRun {
  int exit_code = -1;
  std::string out;
  termios before{}, after{};
};
PtyRun RunUnderPty(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                   unsigned short rows, unsigned short cols,
                   const std::function<void(int master, const std::string& out)>& on_output) {
  PtyRun run;
  winsize ws{};
  ws.ws_row = rows;
  ws.ws_col = cols;
  int master = -1;
  pid_t pid = forkpty(&master, nullptr, nullptr, &ws);
  if (pid == 0) {
    for (const auto& e : env) putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  tcgetattr(master, &run.before);
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{master, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    ssize_t n = read(master, buf, sizeof(buf));
    if (n <= 0) break;  // EIO: mt and everything on the terminal are gone
    run.out.append(buf, static_cast<size_t>(n));
    if (on_output) on_output(master, run.out);
  }
  int status = 0;
  if (waitpid(pid, &status, WNOHANG) == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  tcgetattr(master, &run.after);
  close(master);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return run;
}

TEST_F(MtExecTest, DashTGivesATerminalOfTheLocalSizeAndFollowsResizes) {
  // The remote shell reports its terminal and size, waits for the size to change, reports it.
  std::string script = "tty; stty size; while [ \"$(stty size)\" = \"30 100\" ]; do sleep 0.05; done; stty size";
  bool resized = false;
  auto run = RunUnderPty({Runfile("cmd/mt/mt"), "exec", "-t", "svc-0", "--", "sh", "-c", script}, env_, 30,
                         100, [&](int master, const std::string& out) {
                           if (!resized && out.find("30 100") != std::string::npos) {
                             winsize ws{};
                             ws.ws_row = 40;
                             ws.ws_col = 120;
                             ioctl(master, TIOCSWINSZ, &ws);  // SIGWINCH to mt
                             resized = true;
                           }
                         });
  EXPECT_EQ(run.exit_code, 0) << run.out;
  EXPECT_NE(run.out.find("/dev/pts/"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("30 100"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("40 120"), std::string::npos) << "the resize did not reach the command: " << run.out;
  // Raw mode while it ran; the local terminal as it was once mt exited.
  EXPECT_EQ(run.after.c_lflag & (ICANON | ECHO), run.before.c_lflag & (ICANON | ECHO));
  EXPECT_NE(run.before.c_lflag & ICANON, 0u);
}

TEST_F(MtExecTest, TheTerminalIsRestoredWhenMtIsKilledAndTheSessionEnds) {
  pid_t mt_pid = 0;
  bool killed = false;
  std::string pid_file = dir_ + "/remote.pid";
  auto run = RunUnderPty({Runfile("cmd/mt/mt"), "exec", "-t", "-i", "svc-0", "--", "sh", "-c",
                          "echo $$ > " + pid_file + "; echo ready; exec sleep 600"},
                         env_, 24, 80, [&](int master, const std::string& out) {
                           if (!killed && out.find("ready") != std::string::npos) {
                             // mt is the terminal's foreground process group.
                             mt_pid = tcgetpgrp(master);
                             killed = mt_pid > 0 && kill(mt_pid, SIGTERM) == 0;
                           }
                         });
  ASSERT_TRUE(killed) << run.out;
  EXPECT_EQ(run.exit_code, 128 + SIGTERM);
  EXPECT_NE(run.after.c_lflag & ICANON, 0u) << "mt left the terminal in raw mode";
  EXPECT_NE(run.after.c_lflag & ECHO, 0u);
  // The agent saw its reader go and ended the session: the command is killed and reaped.
  int remote = std::atoi(ReadFile(pid_file).c_str());
  ASSERT_GT(remote, 0);
  EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(remote); }, 10s)) << "the abandoned command still runs";
}

TEST(MtExecAuth, ReadOnlyTokensAreRefusedAndSessionsBelongToTheirCreator) {
  std::string dir = TempDir("mt-exec-auth");
  int port = FreePort();
  auto server = StartServer(port, dir + "/data", dir + "/server.log", {"--auth", "tokens", "--bootstrap-token"});
  ASSERT_TRUE(server) << ReadFile(dir + "/server.log");
  std::string log = ReadFile(dir + "/server.log");
  auto at = log.find("bootstrap admin token");
  ASSERT_NE(at, std::string::npos) << log;
  auto start = log.find('\n', at) + 1;
  std::string admin = log.substr(start, log.find('\n', start) - start);
  httplib::Client cli("127.0.0.1", port);
  cli.set_bearer_token_auth(admin.c_str());
  auto make = [&](const std::string& name, const std::string& role, const std::string& node = "") {
    Json req = {{"name", name}, {"role", role}};
    if (!node.empty()) req["node"] = node;
    auto r = cli.Post("/v1/tokens", req.dump(), "application/json");
    EXPECT_TRUE(r && r->status == 201) << (r ? r->body : "no response");
    return r && r->status == 201 ? Json::parse(r->body)["token"].get<std::string>() : std::string();
  };
  std::string reader = make("reader", "read-only");
  std::string op = make("deployer", "operator");
  std::string node = make("worker", "node", "worker");
  Process agent({Runfile("cmd/mentat-agent/mentat-agent"), "--server", "http://127.0.0.1:" + std::to_string(port),
                 "--token", node, "--node-name", "worker", "--data-dir", dir + "/agent"},
                dir + "/agent.log");
  std::string addr = "MENTAT_ADDR=http://127.0.0.1:" + std::to_string(port);
  auto mt = [&](const std::string& token, std::vector<std::string> args) {
    args.insert(args.begin(), Runfile("cmd/mt/mt"));
    return RunCommand(args, {addr, "HOME=" + dir, "MENTAT_TOKEN=" + token});
  };
  WriteFile(dir + "/svc.yaml", kService);
  ASSERT_EQ(mt(op, {"apply", "-f", dir + "/svc.yaml"}).exit_code, 0);
  ASSERT_EQ(mt(op, {"wait", "--for=condition=Ready", "service/svc", "--timeout=30s"}).exit_code, 0)
      << ReadFile(dir + "/agent.log");

  auto refused = mt(reader, {"exec", "svc-0", "--", "true"});
  EXPECT_EQ(refused.exit_code, 4) << refused.err;
  EXPECT_NE(refused.err.find("forbidden"), std::string::npos) << refused.err;
  auto ok = mt(op, {"exec", "svc-0", "--", "sh", "-c", "exit 3"});
  EXPECT_EQ(ok.exit_code, 3) << ok.err;

  // A session is its creator's: another token (even an admin's) gets 403 on it.
  httplib::Client ac("127.0.0.1", port);
  ac.set_bearer_token_auth(op.c_str());
  auto created = ac.Post("/v1/allocations/svc-0/exec", R"({"command":["cat"],"stdin":true})", "application/json");
  ASSERT_TRUE(created && created->status == 201) << (created ? created->body : "no response");
  std::string id = Json::parse(created->body)["id"];
  httplib::Client other("127.0.0.1", port);
  other.set_bearer_token_auth(admin.c_str());
  auto stolen = other.Post("/v1/exec/" + id + "/input", "x", "application/octet-stream");
  ASSERT_TRUE(stolen);
  EXPECT_EQ(stolen->status, 403) << stolen->body;
  auto mine = ac.Post("/v1/exec/" + id + "/input?eof=true", "typed\n", "application/octet-stream");
  ASSERT_TRUE(mine);
  EXPECT_EQ(mine->status, 200) << mine->body;
  // Output written before anyone read it is still there, then the exit.
  auto out = ac.Get("/v1/exec/" + id + "/output");
  ASSERT_TRUE(out);
  EXPECT_EQ(out->status, 200);
  EXPECT_NE(out->body.find(R"("data":"dHlwZWQK")"), std::string::npos) << out->body;  // "typed\n"
  EXPECT_NE(out->body.find(R"({"exit":0})"), std::string::npos) << out->body;
}

}  // namespace
}  // namespace mentat::e2e
