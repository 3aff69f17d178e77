// mt in a shell, against a real server: colour only on a terminal and never with NO_COLOR,
// the documented exit codes (0, 1, 2 usage, 3 unreachable), errors at file:line, and bash
// completion of commands, kinds, flags and, from the server, object names.
#include <gtest/gtest.h>

#include <regex>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;

class MtShellTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(TempDir("mt-shell"));
    port_ = FreePort();
    server_ = StartServer(port_, *dir_ + "/data", *dir_ + "/server.log").release();
    ASSERT_TRUE(server_) << ReadFile(*dir_ + "/server.log");
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }
  static std::string Addr() { return "http://127.0.0.1:" + std::to_string(port_); }
  static std::vector<std::string> Env(std::vector<std::string> extra = {}) {
    std::vector<std::string> env = {
        "/usr/bin/env",  "-u",         "MENTAT_TOKEN",         "-u", "NO_COLOR",
        "HOME=" + *dir_, "TERM=xterm", "MENTAT_ADDR=" + Addr()};
    env.insert(env.end(), extra.begin(), extra.end());
    return env;
  }
  static CommandResult Mt(std::vector<std::string> args, std::vector<std::string> env = {}) {
    auto argv = Env(std::move(env));
    argv.push_back(Runfile("cmd/mt/mt"));
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }
  // On a pseudo-terminal (util-linux script): stdout and stderr both go to it.
  static CommandResult MtOnTty(std::vector<std::string> args, std::vector<std::string> env = {}) {
    auto argv = Env(std::move(env));
    argv.push_back(Runfile("cmd/mt/mt"));
    argv.insert(argv.end(), args.begin(), args.end());
    std::string cmd;
    for (const auto& a : argv) cmd += "'" + a + "' ";
    return RunCommand({"/usr/bin/script", "-qefc", cmd, "/dev/null"});
  }
  static std::string File(const std::string& name, const std::string& text) {
    std::string f = *dir_ + "/" + name;
    WriteFile(f, text);
    return f;
  }
  // What bash completes for the words of `line` (the last one being completed).
  static std::string Complete(const std::string& line) {
    std::string mt = Runfile("cmd/mt/mt");
    std::string script = File("completion.bash", Mt({"completion", "bash"}).out);
    std::string words = "'" + mt + "' " + line;
    std::string program = "source '" + script + "'; COMP_WORDS=(" + words +
                          "); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); "
                          "[[ '" +
                          line +
                          "' == *' ' ]] && { COMP_WORDS+=(''); ((COMP_CWORD++)); }; "
                          "_mt; printf '%s\\n' \"${COMPREPLY[@]}\" | sort | tr '\\n' ' '";
    auto argv = Env();
    argv.insert(argv.end(), {"/bin/bash", "-c", program});
    return RunCommand(argv).out;
  }

  static std::string* dir_;
  static int port_;
  static Process* server_;
};
std::string* MtShellTest::dir_;
int MtShellTest::port_;
Process* MtShellTest::server_;

TEST_F(MtShellTest, ColourOnlyOnATerminalAndNeverWithNoColor) {
  auto plain = Mt({"get", "services", "nope"});
  EXPECT_EQ(plain.exit_code, 1);
  EXPECT_EQ(plain.err, "error: Service \"nope\" not found\n");

  auto tty = MtOnTty({"get", "services", "nope"});
  EXPECT_EQ(tty.exit_code, 1);
  EXPECT_NE(tty.out.find("\033[31merror: \033[0mService \"nope\" not found"), std::string::npos)
      << tty.out;

  auto no_color = MtOnTty({"get", "services", "nope"}, {"NO_COLOR=1"});
  EXPECT_EQ(no_color.exit_code, 1);
  EXPECT_NE(no_color.out.find("error: Service \"nope\" not found"), std::string::npos);
  EXPECT_EQ(no_color.out.find('\033'), std::string::npos) << no_color.out;

  // diff: red and green on a terminal, plain in a pipe.
  std::string f = File("colour.yaml", "name: colour\ndriver: exec\ncommand: /bin/true\n");
  auto diff_tty = MtOnTty({"diff", "-f", f});
  EXPECT_EQ(diff_tty.exit_code, 1) << diff_tty.out;
  EXPECT_NE(diff_tty.out.find("\033[32m+kind: Service\033[0m"), std::string::npos) << diff_tty.out;
  auto diff_pipe = Mt({"diff", "-f", f});
  EXPECT_EQ(diff_pipe.exit_code, 1);
  EXPECT_NE(diff_pipe.out.find("\n+kind: Service\n"), std::string::npos) << diff_pipe.out;
  EXPECT_EQ(diff_pipe.out.find('\033'), std::string::npos);
}

TEST_F(MtShellTest, ExitCodes) {
  EXPECT_EQ(Mt({"version"}).exit_code, 0);
  auto help = Mt({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("diff"), std::string::npos);
  // 2: usage. Nothing is sent.
  auto missing = Mt({"get"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("resources is required"), std::string::npos) << missing.err;
  EXPECT_EQ(Mt({"get", "services", "--frobnicate"}).exit_code, 2);
  EXPECT_EQ(Mt({"get", "services", "-o", "toml"}).exit_code, 2);
  EXPECT_EQ(Mt({"frobnicate"}).exit_code, 2);
  // 3: nothing listens there; the message says where the address came from.
  auto down =
      Mt({"get", "services"}, {"MENTAT_ADDR=http://127.0.0.1:" + std::to_string(FreePort())});
  EXPECT_EQ(down.exit_code, 3);
  EXPECT_NE(down.err.find("cannot reach the Mentat server at http://127.0.0.1:"),
            std::string::npos);
  EXPECT_NE(down.err.find("(server from MENTAT_ADDR)"), std::string::npos) << down.err;
  auto diff_down = Mt({"diff", "-f", File("d.yaml", "name: d\ndriver: exec\ncommand: /a\n")},
                      {"MENTAT_ADDR=http://127.0.0.1:" + std::to_string(FreePort())});
  EXPECT_EQ(diff_down.exit_code, 3);
}

TEST_F(MtShellTest, ErrorsPointAtFileAndLine) {
  std::string bad = File("typo.yaml", "name: web\ndriver: exec\ncomand: /bin/true\n");
  std::string message = bad + ":3:1: comand: unknown field, did you mean \"command\"?";
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"apply", "-f", bad}, {"delete", "-f", bad}, {"diff", "-f", bad}}) {
    auto r = Mt(args);
    EXPECT_EQ(r.exit_code, args[0] == "diff" ? 2 : 1) << args[0];
    EXPECT_NE(r.err.find(message), std::string::npos) << args[0] << ": " << r.err;
  }
}

TEST_F(MtShellTest, BashCompletion) {
  std::string f = File("names.yaml",
                       "name: web\ndriver: exec\ncommand: /bin/true\n---\n"
                       "name: worker\ndriver: exec\ncommand: /bin/true\n");
  ASSERT_EQ(Mt({"apply", "-f", f}).exit_code, 0);
  ASSERT_EQ(Mt({"-n", "staging", "apply", "-f",
                File("other.yaml", "name: other\ndriver: exec\ncommand: /a\n")})
                .exit_code,
            0);
  EXPECT_EQ(Complete("g"), "get ");
  EXPECT_EQ(Complete("d"), "delete describe diff ");
  EXPECT_EQ(Complete("get s"), "securityprofiles servicerevisions services ");
  EXPECT_EQ(Complete("rollout "), "history status undo ");
  EXPECT_EQ(Complete("get services w"), "web worker ");
  EXPECT_EQ(Complete("describe service/w"), "service/web service/worker ");
  EXPECT_EQ(Complete("-n staging get services "), "other ");
  EXPECT_EQ(Complete("get services -o "), "json name wide yaml ");
  EXPECT_EQ(Complete("apply --w"), "--wait ");
  EXPECT_EQ(Complete("wait --f"), "--for ");
  EXPECT_EQ(Complete("completion "), "bash ");
  EXPECT_EQ(Complete("config "), "view ");
}

}  // namespace
}  // namespace mentat::e2e
