// mt logs against a real server and agent: --tail, and -f that keeps going across a restart of
// the workload and picks up a new allocation of the service as it appears; --since a point in
// time, from the agent's log time index; stdout and stderr merged in order by default (a crash
// loop's reason shows, marked), --stdout / --stderr to narrow, --timestamps, and -f across an
// agent restart on both streams. mt reads every log through the server's route, which relays it
// from the agent.
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

// A mentat-server on a free port (with its in-process agent when `flags` say --dev), and mt run
// against it with a clean environment.
struct Cluster {
  Cluster(const std::string& name, const std::vector<std::string>& flags)
      : dir(TempDir(name)), port(FreePort()),
        server(StartServer(port, dir + "/data", dir + "/server.log", flags)),
        env({"MENTAT_ADDR=http://127.0.0.1:" + std::to_string(port), "HOME=" + dir}) {}
  CommandResult Mt(std::vector<std::string> args) const {
    args.insert(args.begin(), Runfile("cmd/mt/mt"));
    return RunCommand(args, env);
  }
  std::string dir;
  int port;
  std::unique_ptr<Process> server;
  std::vector<std::string> env;
};

TEST(MtLogs, TailAndFollowAcrossRestartsAndNewAllocations) {
  Cluster cluster("mt-logs", {"--dev", "--node-name", "logs-node"});
  ASSERT_TRUE(cluster.server) << ReadFile(cluster.dir + "/server.log");
  auto& [dir, port, server, env] = cluster;
  auto mt = [&](std::vector<std::string> args) { return cluster.Mt(std::move(args)); };
  std::string manifest =
      "name: ticker\ndriver: exec\ncommand: /bin/sh\n"
      "args: [\"-c\", \"i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done\"]\n";
  WriteFile(dir + "/ticker.yaml", manifest);
  ASSERT_EQ(mt({"apply", "-f", dir + "/ticker.yaml"}).exit_code, 0);
  ASSERT_EQ(mt({"wait", "--for=condition=Ready", "service/ticker", "--timeout=30s"}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return mt({"logs", "ticker-0"}).out.find("tick 3\n") != std::string::npos; }, 10s));

  auto tail = mt({"logs", "ticker-0", "--tail", "2"});
  ASSERT_EQ(tail.exit_code, 0) << tail.err;
  EXPECT_EQ(std::count(tail.out.begin(), tail.out.end(), '\n'), 2) << tail.out;
  EXPECT_EQ(tail.out.rfind("tick ", 0), 0u) << tail.out;

  // Follow the service from now on, in the background.
  std::vector<std::string> argv = {"/usr/bin/env", env[0], env[1], Runfile("cmd/mt/mt"), "logs",
                                   "ticker", "-f", "--tail", "0"};
  Process follow(argv, dir + "/follow.out");
  // The workload dies and is restarted: its counter starts over, in the same log.
  auto alloc = Json::parse(HttpGet(port, "/v1/allocations/ticker-0").second);
  int pid = alloc["status"].value("pid", 0);
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(WaitFor([&] { return ReadFile(dir + "/follow.out").find("[ticker-0] tick") != std::string::npos; }, 10s))
      << ReadFile(dir + "/follow.out");
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  EXPECT_TRUE(WaitFor([&] { return ReadFile(dir + "/follow.out").find("[ticker-0] tick 0\n") != std::string::npos; }, 20s))
      << "the follow did not carry on after the restart:\n" << ReadFile(dir + "/follow.out");
  // A second allocation joins the follow as it appears.
  WriteFile(dir + "/ticker.yaml", manifest + "count: 2\n");
  ASSERT_EQ(mt({"apply", "-f", dir + "/ticker.yaml"}).exit_code, 0);
  EXPECT_TRUE(WaitFor([&] { return ReadFile(dir + "/follow.out").find("[ticker-1] tick") != std::string::npos; }, 20s))
      << ReadFile(dir + "/follow.out");
  EXPECT_TRUE(follow.Running()) << "mt logs -f stopped";

  // The logs route (the server's, relayed from the agent) refuses hostile names and counts
  // with a 400 naming the field.
  for (const char* bad : {"/v1/allocations/ticker-0/logs?namespace=..%2F..%2Fetc",
                                 "/v1/allocations/ticker-0/logs?tail=-3",
                                 "/v1/allocations/ticker-0/logs?offset=abc",
                                 "/v1/allocations/..%2E/logs"}) {
    auto [code, body] = HttpGet(port, bad);
    EXPECT_EQ(code, 400) << bad << ": " << body;
  }

  auto missing = mt({"logs", "nope"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("no allocation or service named \"nope\""), std::string::npos) << missing.err;
}

// Now as RFC 3339 with milliseconds, as a user could write it.
std::string NowRfc3339Millis() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = ms / 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char frac[8];
  std::snprintf(frac, sizeof(frac), ".%03dZ", static_cast<int>(ms % 1000));
  return std::string(buf) + frac;
}

TEST(MtLogs, SinceAPointInTimeShowsExactlyWhatCameAfter) {
  Cluster cluster("mt-logs-since", {"--dev", "--node-name", "since-node"});
  ASSERT_TRUE(cluster.server) << ReadFile(cluster.dir + "/server.log");
  auto& [dir, port, server, env] = cluster;
  auto mt = [&](std::vector<std::string> args) { return cluster.Mt(std::move(args)); };
  // Five lines, a pause until the test says go, five more.
  WriteFile(dir + "/since.yaml",
            "name: phases\ndriver: exec\ncommand: /bin/sh\nargs: [\"-c\", \"for i in 0 1 2 3 4; do echo before $i; done; "
            "while [ ! -f " + dir + "/go ]; do sleep 0.05; done; for i in 0 1 2 3 4; do echo after $i; done; "
            "exec sleep 600\"]\n");
  ASSERT_EQ(mt({"apply", "-f", dir + "/since.yaml"}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return mt({"logs", "phases-0"}).out.find("before 4\n") != std::string::npos; }, 20s));

  // The point in time: once the agent has sampled the log after the first phase, a --since of
  // "now" shows nothing of it (before that it may show up to one sampling period's worth).
  std::string point;
  ASSERT_TRUE(WaitFor([&] {
    point = NowRfc3339Millis();
    auto r = mt({"logs", "phases-0", "--since", point});
    return r.exit_code == 0 && r.out.empty();
  }, 10s)) << "a --since of now kept showing older lines";

  WriteFile(dir + "/go", "");
  ASSERT_TRUE(WaitFor([&] { return mt({"logs", "phases-0"}).out.find("after 4\n") != std::string::npos; }, 10s));
  auto since = mt({"logs", "phases-0", "--since", point});
  EXPECT_EQ(since.exit_code, 0) << since.err;
  EXPECT_EQ(since.out, "after 0\nafter 1\nafter 2\nafter 3\nafter 4\n");
  // With --tail, the last lines of that.
  EXPECT_EQ(mt({"logs", "phases-0", "--since", point, "--tail", "1"}).out, "after 4\n");
  // A duration reaching back before the start: everything.
  auto hour = mt({"logs", "phases", "--since", "1h"});
  EXPECT_EQ(hour.exit_code, 0) << hour.err;
  EXPECT_EQ(std::count(hour.out.begin(), hour.out.end(), '\n'), 10) << hour.out;

  auto bad = mt({"logs", "phases-0", "--since", "yesterday"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--since"), std::string::npos) << bad.err;
  auto [code, body] = HttpGet(port, "/v1/allocations/phases-0/logs?since=2026-13-99");
  EXPECT_EQ(code, 400) << body;
  EXPECT_NE(body.find("\"field\":\"since\""), std::string::npos) << body;
}

// The numbers of "n <i> ..." lines, in order (a "[alloc] " prefix is ignored).
std::vector<long> Numbers(const std::string& text) {
  std::vector<long> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    auto at = line.find("n ");
    if (at == std::string::npos || (at != 0 && line[at - 1] != ' ')) continue;
    out.push_back(std::atol(line.c_str() + at + 2));
  }
  return out;
}

TEST(MtLogs, RotationBoundsDiskAndFollowersMissNothing) {
  Cluster cluster("mt-logs-rotate", {"--dev", "--node-name", "rot-node"});
  ASSERT_TRUE(cluster.server) << ReadFile(cluster.dir + "/server.log");
  auto& [dir, port, server, env] = cluster;
  auto mt = [&](std::vector<std::string> args) { return cluster.Mt(std::move(args)); };
  // 100,000 lines of 70 bytes (about 7 MB) in bursts, once the test says go; rotated past 1 MB.
  const long kLines = 100000;
  WriteFile(dir + "/rot.yaml",
            "name: rot\ndriver: exec\ncommand: /bin/sh\nlogs:\n  max_file_mb: 1\n  max_files: 2\n"
            "args: [\"-c\", \"echo ready; while [ ! -f " + dir + "/go ]; do sleep 0.05; done; i=0; "
            "while [ $i -lt " + std::to_string(kLines) + " ]; do "
            "echo \\\"n $i of the output that must all arrive in order, padded to seventy\\\"; i=$((i+1)); "
            "if [ $((i % 2000)) -eq 0 ]; then sleep 0.05; fi; done; echo done; exec sleep 600\"]\n");
  ASSERT_EQ(mt({"apply", "-f", dir + "/rot.yaml"}).exit_code, 0);
  ASSERT_EQ(mt({"wait", "--for=condition=Ready", "service/rot", "--timeout=30s"}).exit_code, 0);
  Process follow({"/usr/bin/env", env[0], env[1], Runfile("cmd/mt/mt"), "logs", "rot-0", "-f"},
                 dir + "/follow.out");
  ASSERT_TRUE(WaitFor([&] { return ReadFile(dir + "/follow.out").find("ready\n") != std::string::npos; }, 10s));
  WriteFile(dir + "/go", "");
  ASSERT_TRUE(WaitFor([&] { return ReadFile(dir + "/follow.out").find("done\n") != std::string::npos; }, 60s))
      << "the follower stopped at " << ReadFile(dir + "/follow.out").substr(std::max<size_t>(ReadFile(dir + "/follow.out").size(), 200) - 200);

  // Every line, once, in order, although the log rotated several times under the follower.
  auto followed = Numbers(ReadFile(dir + "/follow.out"));
  ASSERT_EQ(followed.size(), static_cast<size_t>(kLines));
  for (long i = 0; i < kLines; ++i) {
    ASSERT_EQ(followed[i], i) << "line " << i << " of the followed output";
  }

  // On disk: the live part shrinks to the limit at the next sample; two archives of at most
  // the limit; nothing older.
  namespace fs = std::filesystem;
  std::string log = dir + "/data/agent/tasks/default.rot-0/stdout.log";
  auto disk = [&] {
    struct stat st {};
    ::stat(log.c_str(), &st);
    return static_cast<int64_t>(st.st_blocks) * 512;
  };
  EXPECT_TRUE(WaitFor([&] { return disk() <= (1 << 20) + (64 << 10); }, 10s)) << disk() << " bytes on disk";
  EXPECT_GT(fs::file_size(log), 6000000u) << "offsets count every byte written";
  EXPECT_LE(fs::file_size(log + ".1"), 1u << 20);
  EXPECT_LE(fs::file_size(log + ".2"), 1u << 20);
  EXPECT_FALSE(fs::exists(log + ".3"));

  // --tail reads the end; a plain read shows all that is kept, from a whole line, gap-free.
  auto tail = mt({"logs", "rot-0", "--tail", "2"});
  EXPECT_EQ(Numbers(tail.out), std::vector<long>{kLines - 1}) << tail.out;
  EXPECT_NE(tail.out.find("\ndone\n"), std::string::npos) << tail.out;
  auto t0 = std::chrono::steady_clock::now();
  auto all = mt({"logs", "rot-0"});
  // Said on failure: how long it took, and the end of the server's log (the relay's view).
  std::string server_log = ReadFile(dir + "/server.log");
  ASSERT_EQ(all.exit_code, 0) << all.err << " after "
                              << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()
                              << " s; server log:\n"
                              << server_log.substr(server_log.size() > 3000 ? server_log.size() - 3000 : 0);
  auto kept = Numbers(all.out);
  // Everything kept, archives and live part: as many lines as those files hold (the live
  // file's punched start reads as zeros, which hold no newline), less at most one line cut and
  // the "ready" and "done" lines, which are not numbered.
  auto newlines = [](const std::string& path) {
    std::string text = ReadFile(path);
    return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
  };
  size_t on_disk = newlines(log) + newlines(log + ".1") + newlines(log + ".2");
  EXPECT_LE(kept.size(), on_disk);
  EXPECT_GE(kept.size() + 3, on_disk) << "a plain read shows the archives too";
  ASSERT_GT(kept.size(), 5000u);
  EXPECT_EQ(all.out.rfind("n ", 0), 0u) << all.out.substr(0, 100);
  for (size_t i = 1; i < kept.size(); ++i) {
    ASSERT_EQ(kept[i], kept[i - 1] + 1) << "a gap in what is kept";
  }
  EXPECT_EQ(kept.back(), kLines - 1);
  EXPECT_TRUE(follow.Running());
}

// The lines of `text`, each without its newline.
std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(MtLogs, ACrashLoopsReasonOnStderrShowsMarkedInOrderWithStdout) {
  Cluster cluster("mt-logs-both", {"--dev", "--node-name", "both-node"});
  ASSERT_TRUE(cluster.server) << ReadFile(cluster.dir + "/server.log");
  auto& [dir, port, server, env] = cluster;
  auto mt = [&](std::vector<std::string> args) { return cluster.Mt(std::move(args)); };
  // A python app that dies at start: what it says on stdout, then why on stderr, then exit 1.
  WriteFile(dir + "/crash.yaml",
            "name: crash\ndriver: exec\ncommand: /bin/sh\n"
            "args: [\"-c\", \"echo starting app; sleep 0.1; echo 'Traceback (most recent call last):' >&2; "
            "echo 'ValueError: DATABASE_URL is not set' >&2; sleep 0.1; echo giving up; exit 1\"]\n");
  ASSERT_EQ(mt({"apply", "-f", dir + "/crash.yaml"}).exit_code, 0);
  CommandResult logs;
  ASSERT_TRUE(WaitFor([&] {
    logs = mt({"logs", "crash-0"});
    return std::count(logs.out.begin(), logs.out.end(), '\n') >= 8;  // two runs at least
  }, 30s)) << logs.out << logs.err;
  EXPECT_EQ(logs.exit_code, 0) << logs.err;
  // Every run's four lines, in the order written; stderr's marked (no colour: not a terminal).
  const std::vector<std::string> run = {"starting app", "stderr: Traceback (most recent call last):",
                                        "stderr: ValueError: DATABASE_URL is not set", "giving up"};
  auto lines = Lines(logs.out);
  ASSERT_GE(lines.size(), 8u);
  for (size_t i = 0; i + 4 <= lines.size(); i += 4) {
    EXPECT_EQ(std::vector<std::string>(lines.begin() + i, lines.begin() + i + 4), run) << logs.out;
  }
  EXPECT_EQ(logs.out.find("\x1b["), std::string::npos) << "colour on a pipe";

  // Narrowed: one stream, raw and unmarked.
  auto out = mt({"logs", "crash-0", "--stdout"});
  EXPECT_EQ(out.exit_code, 0) << out.err;
  ASSERT_FALSE(out.out.empty());
  for (const auto& l : Lines(out.out)) EXPECT_TRUE(l == "starting app" || l == "giving up") << out.out;
  auto err = mt({"logs", "crash-0", "--stderr"});
  EXPECT_EQ(err.exit_code, 0) << err.err;
  ASSERT_FALSE(err.out.empty());
  EXPECT_EQ(err.out.rfind("Traceback (most recent call last):\nValueError: DATABASE_URL is not set\n", 0), 0u) << err.out;
  EXPECT_EQ(err.out.find("stderr:"), std::string::npos) << err.out;
  // Both flags: both streams again.
  EXPECT_EQ(Lines(mt({"logs", "crash-0", "--stdout", "--stderr", "--tail", "4"}).out), run);

  // --timestamps: each line with its RFC 3339 time (ns), in order; with one stream too.
  const std::regex stamped(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (.*)$)");
  auto ts = mt({"logs", "crash-0", "--timestamps", "--tail", "4"});
  ASSERT_EQ(ts.exit_code, 0) << ts.err;
  auto ts_lines = Lines(ts.out);
  ASSERT_EQ(ts_lines.size(), 4u) << ts.out;
  std::string previous;
  for (size_t i = 0; i < ts_lines.size(); ++i) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(ts_lines[i], m, stamped)) << ts_lines[i];
    EXPECT_EQ(m[1].str(), run[i]);
    // Lines of one stream within 100 ms share their index record's time.
    EXPECT_LE(previous, ts_lines[i].substr(0, 30)) << "times go forward";
    previous = ts_lines[i].substr(0, 30);
  }
  for (const auto& l : Lines(mt({"logs", "crash-0", "--stderr", "--timestamps", "--tail", "2"}).out)) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(l, m, stamped)) << l;
    EXPECT_EQ(m[1].str().rfind("stderr:", 0), std::string::npos) << l;
  }

  // The logs route: stream=all by default, as CRI-style lines, and a bad offset named.
  auto [code, body] = HttpGet(port, "/v1/allocations/crash-0/logs?tail=2");
  EXPECT_EQ(code, 200) << body;
  EXPECT_TRUE(std::regex_search(body, std::regex(R"(Z stderr F ValueError: DATABASE_URL is not set\n.*Z stdout F giving up\n$)")))
      << body;
  for (const char* bad : {"/v1/allocations/crash-0/logs?offset=12", "/v1/allocations/crash-0/logs?stream=both",
                                 "/v1/allocations/crash-0/logs?stream=stdout&offset=1,2"}) {
    auto [bad_code, bad_body] = HttpGet(port, bad);
    EXPECT_EQ(bad_code, 400) << bad << ": " << bad_body;
  }
}

TEST(MtLogs, FollowAcrossAnAgentRestartLosesAndRepeatsNothingOnBothStreams) {
  Cluster cluster("mt-logs-agent", {});
  ASSERT_TRUE(cluster.server) << ReadFile(cluster.dir + "/server.log");
  auto& [dir, port, server, env] = cluster;
  auto mt = [&](std::vector<std::string> args) { return cluster.Mt(std::move(args)); };
  std::vector<std::string> agent_argv = {Runfile("cmd/mentat-agent/mentat-agent"), "--server",
                                         "http://127.0.0.1:" + std::to_string(port), "--node-name",
                                         "relay-node", "--data-dir", dir + "/agent"};
  auto agent = std::make_unique<Process>(agent_argv, dir + "/agent.log");
  WriteFile(dir + "/chatter.yaml",
            "name: chatter\ndriver: exec\ncommand: /bin/sh\n"
            "args: [\"-c\", \"i=0; while true; do echo o $i; echo e $i >&2; i=$((i+1)); sleep 0.01; done\"]\n");
  ASSERT_EQ(mt({"apply", "-f", dir + "/chatter.yaml"}).exit_code, 0);
  ASSERT_EQ(mt({"wait", "--for=condition=Ready", "service/chatter", "--timeout=30s"}).exit_code, 0);
  Process follow({"/usr/bin/env", env[0], env[1], Runfile("cmd/mt/mt"), "logs", "chatter-0", "-f"},
                 dir + "/follow.out");
  ASSERT_TRUE(WaitFor([&] { return ReadFile(dir + "/follow.out").find("stderr: e 20\n") != std::string::npos; }, 20s))
      << ReadFile(dir + "/follow.out");

  // kill -9 of the agent: the workload and its relay go on writing meanwhile.
  agent->Signal(SIGKILL);
  ASSERT_TRUE(agent->Wait(5s).has_value());
  const std::string log = dir + "/agent/tasks/default.chatter-0/stderr.log";
  size_t at_kill = ReadFile(log).size();
  ASSERT_TRUE(WaitFor([&] { return ReadFile(log).size() > at_kill + 500; }, 10s)) << "the relay stopped with the agent";
  agent = std::make_unique<Process>(agent_argv, dir + "/agent.log");
  // The follower reconnects and catches up past what was written while the agent was down.
  const std::string written = ReadFile(log);
  std::string until = "e " + std::to_string(std::count(written.begin(), written.end(), '\n') + 50);
  ASSERT_TRUE(WaitFor([&] { return ReadFile(dir + "/follow.out").find("stderr: " + until + "\n") != std::string::npos; }, 30s))
      << ReadFile(dir + "/follow.out").substr(0, 2000);

  // Every line of each stream once, in order: stdout's "o i" as they are, stderr's marked.
  std::vector<long> out, err;
  for (const auto& l : Lines(ReadFile(dir + "/follow.out"))) {
    if (l.rfind("o ", 0) == 0) out.push_back(std::atol(l.c_str() + 2));
    else if (l.rfind("stderr: e ", 0) == 0) err.push_back(std::atol(l.c_str() + 10));
    else ADD_FAILURE() << "an unexpected line: " << l;
  }
  ASSERT_GT(err.size(), 100u);
  for (const auto* stream : {&out, &err}) {
    for (size_t k = 0; k < stream->size(); ++k) {
      ASSERT_EQ((*stream)[k], static_cast<long>(k)) << (stream == &out ? "stdout" : "stderr")
                                                    << ": a gap or a repeat at line " << k;
    }
  }
  EXPECT_TRUE(follow.Running());
  // The workload goes with its service (it outlives agents by design).
  ASSERT_EQ(mt({"delete", "services", "--all"}).exit_code, 0);
  EXPECT_TRUE(WaitFor([&] { return mt({"get", "allocations", "-o", "name"}).out.empty(); }, 30s));
  agent->Signal(SIGTERM);
  agent->Wait(10s);
}

}  // namespace
}  // namespace mentat::e2e
