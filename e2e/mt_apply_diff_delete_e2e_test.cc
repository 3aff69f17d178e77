// Changing things with mt against a real server and its in-process agent: apply --wait (a live
// display redrawn in place on a terminal, plain lines otherwise; a timeout that names what is
// stuck and why), diff (the server's dry-run result against the live object, exit 0/1/2),
// delete by name, selector and -f, and --prune refused without --applyset.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;

class MtChangeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("mt-change");
    port_ = FreePort();
    server_ = StartServer(port_, dir_ + "/data", dir_ + "/server.log",
                          {"--dev", "--node-name", "e2e-node"});
    ASSERT_TRUE(server_) << ReadFile(dir_ + "/server.log");
  }
  void TearDown() override {
    for (const char* ns : {"default", "staging"}) Mt({"-n", ns, "delete", "services", "--all"});
    WaitFor([&] { return Mt({"get", "allocations", "-A", "-o", "name"}).out.empty(); }, 20s);
  }
  std::vector<std::string> MtArgv(std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/env",
                                     "-u",
                                     "MENTAT_TOKEN",
                                     "-u",
                                     "NO_COLOR",
                                     "HOME=" + dir_,
                                     "MENTAT_ADDR=http://127.0.0.1:" + std::to_string(port_),
                                     Runfile("cmd/mt/mt")};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  CommandResult Mt(std::vector<std::string> args) { return RunCommand(MtArgv(std::move(args))); }
  // mt on a pseudo-terminal (util-linux script), as a person at a shell runs it.
  CommandResult MtOnTty(std::vector<std::string> args) {
    std::string cmd;
    for (const auto& a : MtArgv(std::move(args))) cmd += "'" + a + "' ";
    return RunCommand({"/usr/bin/script", "-qefc", cmd, "/dev/null"}, {"TERM=xterm"});
  }
  std::string File(const std::string& name, const std::string& text) {
    std::string f = dir_ + "/" + name;
    WriteFile(f, text);
    return f;
  }

  std::string dir_;
  int port_ = 0;
  std::unique_ptr<Process> server_;
};

TEST_F(MtChangeTest, ApplyWaitShowsProgressUntilReady) {
  std::string web = File("web.yaml",
                         "name: web\ndriver: exec\ncount: 2\ncommand: /bin/sleep\n"
                         "args: [\"120\"]\n");
  auto r = Mt({"apply", "-f", web, "--wait", "--timeout=30s"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  // Not a terminal: plain lines, each printed when it changes, no escape codes. Which
  // intermediate states are seen depends on how fast the controller and agent are; a first
  // deploy is ready once both allocations stayed up 3 s.
  EXPECT_TRUE(Has(r.out,
                  "^service/web created\n"
                  "(service/web +[01]/2 +(Pending|Starting) +[^\n]+\n)+"
                  "service/web +2/2 +Running +ready; checking that it stays up for 3s\n"
                  "service/web +2/2 +Running +ready\n"
                  "1 service ready after [0-9.]+s\n$"))
      << r.out;
  EXPECT_EQ(r.out.find('\033'), std::string::npos) << r.out;

  // On a terminal: the block is redrawn in place (cursor up, clear line), in colour.
  std::string scaled = File("web.yaml",
                            "name: web\ndriver: exec\ncount: 3\ncommand: /bin/sleep\n"
                            "args: [\"120\"]\n");
  auto tty = MtOnTty({"apply", "-f", scaled, "--wait", "--timeout=30s"});
  ASSERT_EQ(tty.exit_code, 0) << tty.out;
  EXPECT_NE(tty.out.find("service/web configured"), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find("\033[1A\r\033[K"), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find("3/3   \033[32mRunning\033[0m"), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find("1 service ready after"), std::string::npos) << tty.out;
}

TEST_F(MtChangeTest, ApplyWaitDoesNotCallAWorkloadThatCrashesReady) {
  // Up for half a second, then a crash, again and again. Without a port it is Ready as soon as
  // it runs: --wait must see it stay up before calling it ready, and say why it is not.
  std::string app = File("app.yaml",
                         "name: app\ndriver: exec\ncommand: /bin/sh\n"
                         "args: [\"-c\", \"echo starting; sleep 0.5; echo fatal: no config >&2; exit 1\"]\n");
  auto r = Mt({"apply", "-f", app, "--wait", "--timeout=60s"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_EQ(r.out.find("ready after"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("error: not ready: 1 of 1 service\n"), std::string::npos) << r.err;
  EXPECT_TRUE(Has(r.err, "service/app \\([01]/1 ready, [A-Za-z]+\\): app-0 is crash-looping \\([0-9]+ restarts\\): "
                         "exited with code 1")) << r.err;
  EXPECT_NE(r.err.find("the last lines of app-0's stderr:\n    fatal: no config\n"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("Conditions:\n"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Events:\n"), std::string::npos) << r.err;
}

TEST_F(MtChangeTest, ApplyWaitShowsTheStderrBehindAFailedRollout) {
  // Never restarted: the allocation fails and so does the rollout. The rollout's reason comes
  // first, then what the failed allocation wrote to stderr.
  std::string app = File("once.yaml",
                         "name: once\ndriver: exec\nrestart: never\ncommand: /bin/sh\n"
                         "args: [\"-c\", \"echo 'fatal: no license' >&2; exit 3\"]\n");
  auto r = Mt({"apply", "-f", app, "--wait", "--timeout=60s"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_TRUE(Has(r.err, "service/once \\([01]/1 ready, [A-Za-z]+\\): [^\n]*once-0 failed: exited with code 3"))
      << r.err;
  EXPECT_NE(r.err.find("the last lines of once-0's stderr:\n    fatal: no license\n"), std::string::npos)
      << r.err;
}

TEST_F(MtChangeTest, RunAppliesFollowsAndSaysWhereItRuns) {
  std::string web = File("run.yaml", "name: runner\ndriver: exec\ncommand: /bin/sleep\nargs: [\"120\"]\n");
  auto r = Mt({"run", web});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(Has(r.out, "^service/runner created\n")) << r.out;
  EXPECT_TRUE(Has(r.out, "\n1 service ready after [0-9.]+s\n  runner-0 on node e2e-node, Running, pid [0-9]+\n$"))
      << r.out;
  // Again: unchanged, and up at once (its rollout is complete by now or soon).
  auto again = Mt({"run", "-f", web});
  EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_TRUE(Has(again.out, "^service/runner unchanged\n")) << again.out;
  EXPECT_EQ(Mt({"run"}).exit_code, 2);
}

TEST_F(MtChangeTest, ApplyWaitTimeoutNamesWhatIsStuckAndWhy) {
  std::string both = File("both.yaml",
                          "name: ok\ndriver: exec\ncommand: /bin/sleep\nargs: [\"120\"]\n---\n"
                          "name: dock\ndriver: qemu\nimage: /opt/vm/dock.img\n");
  // Both settle first (ok Ready, dock refused placement), so the short timeout below is
  // only about what stays stuck, however slow this machine is.
  ASSERT_EQ(Mt({"apply", "-f", both}).exit_code, 0);
  ASSERT_EQ(Mt({"rollout", "status", "ok", "--timeout=30s"}).exit_code, 0);  // up and healthy
  ASSERT_EQ(Mt({"wait", "--for=condition=Degraded", "service/dock", "--timeout=30s"}).exit_code, 0);
  auto r = Mt({"apply", "-f", both, "--wait", "--timeout=3s"});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(Has(r.out, "\nservice/ok +1/1 +Running +ready\n")) << r.out;
  EXPECT_TRUE(Has(r.out,
                  "\nservice/dock +0/1 +Pending +cannot place allocations: 0/1 nodes "
                  "available: 1 lack driver qemu\n"))
      << r.out;
  // What is stuck, why, its conditions and its events.
  EXPECT_NE(r.err.find("error: timed out after 3s waiting for 1 of 2 services\n\n"
                       "service/dock (0/1 ready, Pending): cannot place allocations: 0/1 nodes "
                       "available: 1 lack driver qemu\nConditions:\n"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(Has(r.err, "\n  Degraded +True +PlacementFailed +[0-9]+s +cannot place allocations"))
      << r.err;
  EXPECT_TRUE(Has(r.err, "\nEvents:\n.*\n  Warning +FailedScheduling ")) << r.err;
  EXPECT_EQ(r.err.find("service/ok"), std::string::npos) << "only what is stuck is named";

  // --wait makes no sense with a dry run; --prune never runs without a named applyset.
  EXPECT_EQ(Mt({"apply", "-f", both, "--wait", "--dry-run=server"}).exit_code, 2);
  std::string other = File("other.yaml", "name: other\ndriver: exec\ncommand: /bin/true\n");
  auto prune = Mt({"apply", "-f", other, "--prune"});
  EXPECT_EQ(prune.exit_code, 2);
  EXPECT_NE(prune.err.find("--prune needs --applyset NAME"), std::string::npos) << prune.err;
  EXPECT_EQ(Mt({"get", "service", "other"}).exit_code, 1) << "a refused apply applied something";
}

TEST_F(MtChangeTest, DiffShowsTheServerSideChange) {
  std::string api = File("api.yaml",
                         "name: api\ndriver: exec\ncommand: /bin/sleep\nargs: [\"120\"]\n"
                         "env:\n  MODE: fast\n");
  // Not there yet: all of it is new. Exit 1: there are changes.
  auto r = Mt({"diff", "-f", api});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(Has(r.out,
                  "^--- service/api \\(default\\) \\(live\\)\n"
                  "\\+\\+\\+ service/api \\(default\\) \\(after apply\\)\n"
                  "@@ -0,0 \\+1,[0-9]+ @@\n\\+apiVersion: mentat.io/v1\n\\+kind: Service\n"))
      << r.out;
  // The server's canonical form, not the file's: env as a list, defaults filled in.
  EXPECT_NE(r.out.find("+    - name: MODE\n+      value: fast\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("+  restart: always\n"), std::string::npos) << r.out;
  EXPECT_EQ(Mt({"get", "service", "api"}).exit_code, 1) << "diff must not apply";

  ASSERT_EQ(Mt({"apply", "-f", api}).exit_code, 0);
  // Applied: no change, exit 0, nothing printed (status and server-owned fields ignored,
  // although the controller and agent have written status since).
  ASSERT_TRUE(WaitFor(
      [&] {
        return Mt({"get", "services", "api"}).out.find("1/1") != std::string::npos;
      },
      20s));
  r = Mt({"diff", "-f", api});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "");

  // A change: only it, in context.
  File("api.yaml",
       "name: api\ndriver: exec\ncount: 3\ncommand: /bin/sleep\nargs: [\"120\"]\n"
       "env:\n  MODE: slow\n");
  r = Mt({"diff", "-f", api});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(Has(r.out, "\n@@ -[0-9]+,[0-9]+ \\+[0-9]+,[0-9]+ @@\n")) << r.out;
  EXPECT_NE(r.out.find("-  count: 1\n+  count: 3\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("-      value: fast\n+      value: slow\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("resourceVersion"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("status"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("apiVersion"), std::string::npos) << "unchanged lines beyond the context";

  // An invalid manifest: file:line from the server, and exit 2 (trouble, not "changes").
  std::string bad = File("bad.yaml", "name: api\ndriver: exce\ncommand: /bin/true\n");
  r = Mt({"diff", "-f", bad});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(bad + ":2:1: driver: unknown driver \"exce\", did you mean \"exec\"?"),
            std::string::npos)
      << r.err;
}

TEST_F(MtChangeTest, DeleteByFileNameAndSelector) {
  std::string dir = dir_ + "/app";
  std::filesystem::create_directories(dir);
  File("app/api-service.yaml", "driver: exec\ncommand: /bin/sleep\nargs: [\"120\"]\n");  // nameless
  File(
      "app/workers.yaml",
      "name: w1\ndriver: exec\ncommand: /bin/sleep\nargs: [\"120\"]\nlabels:\n  tier: work\n"
      "---\nname: w2\ndriver: exec\ncommand: /bin/sleep\nargs: [\"120\"]\nlabels:\n  tier: work\n");
  ASSERT_EQ(Mt({"-n", "staging", "apply", "-f", dir}).exit_code, 0);
  ASSERT_EQ(Mt({"apply", "-f", dir}).exit_code, 0);  // and the same set in default

  // -f removes exactly what apply -f created, names from file names included, in -n's namespace.
  auto r = Mt({"-n", "staging", "delete", "-f", dir});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "service/api-service deleted\nservice/w1 deleted\nservice/w2 deleted\n");
  EXPECT_EQ(Mt({"get", "services", "-n", "staging", "-o", "name"}).out, "");
  EXPECT_EQ(Mt({"get", "services", "-o", "name"}).out,
            "service/api-service\nservice/w1\nservice/w2\n");
  // Again: every one is missing, each is reported, exit 1; --ignore-not-found makes that fine.
  r = Mt({"-n", "staging", "delete", "-f", dir});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("error: Service \"w2\" not found"), std::string::npos) << r.err;
  EXPECT_EQ(Mt({"-n", "staging", "delete", "-f", dir, "--ignore-not-found"}).exit_code, 0);

  // A selector, a dry run, KIND/NAME.
  r = Mt({"delete", "services", "-l", "tier=work", "--dry-run"});
  EXPECT_EQ(r.out, "service/w1 deleted (server dry run)\nservice/w2 deleted (server dry run)\n");
  r = Mt({"delete", "services", "-l", "tier=work"});
  EXPECT_EQ(r.out, "service/w1 deleted\nservice/w2 deleted\n");
  r = Mt({"delete", "service/api-service"});
  EXPECT_EQ(r.out, "service/api-service deleted\n");
  EXPECT_EQ(Mt({"get", "services", "-o", "name"}).out, "");

  // Manifests that a policy now refuses can still be deleted with -f.
  std::string strict = File("strict.yaml",
                            "kind: SecurityProfile\nmetadata:\n  name: strict\n"
                            "spec:\n  driver: exec\n  isolation: low\n");
  std::string guarded = File("guarded.yaml",
                             "name: guarded\ndriver: exec\ncommand: /bin/true\n"
                             "restart: never\nsecurity:\n  profile: strict\n");
  ASSERT_EQ(Mt({"apply", "-f", strict}).exit_code, 0);
  ASSERT_EQ(Mt({"apply", "-f", guarded}).exit_code, 0);
  File("strict.yaml",
       "kind: SecurityProfile\nmetadata:\n  name: strict\n"
       "spec:\n  driver: docker\n  isolation: low\n");
  ASSERT_EQ(Mt({"apply", "-f", strict}).exit_code, 0);
  r = Mt({"apply", "-f", guarded});
  ASSERT_EQ(r.exit_code, 1) << "the profile should refuse it now";
  EXPECT_NE(r.err.find("governs driver docker"), std::string::npos) << r.err;
  r = Mt({"delete", "-f", guarded});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "service/guarded deleted\n");
  EXPECT_EQ(Mt({"delete", "-f", strict}).out, "securityprofile/strict deleted\n");

  // Usage mistakes are exit 2 and delete nothing.
  EXPECT_EQ(Mt({"delete", "services"}).exit_code, 2);
  EXPECT_EQ(Mt({"delete", "services", "x", "-f", dir}).exit_code, 2);
  EXPECT_EQ(Mt({"delete"}).exit_code, 2);
}

}  // namespace
}  // namespace mentat::e2e
