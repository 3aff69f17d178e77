// mt get and mt nodes against a real server: the tables show what the service controller and
// the agent write (READY, UP-TO-DATE, node, restarts, node readiness and drivers), and
// `mt get -w` never loses a change: it resumes after a server restart from the last revision
// it saw, and lists again when that revision's history is gone (410).
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <regex>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

class MtGetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("mt-get");
    port_ = FreePort();
  }
  void TearDown() override {
    // Leave no workload running: delete the services and wait until the agent stopped them.
    if (server_ && server_->Running()) {
      Mt({"delete", "services", "--all"});
      WaitFor([&] { return Mt({"get", "allocations", "-o", "name"}).out.empty(); }, 20s);
    }
  }
  void Start(std::vector<std::string> extra = {}) {
    server_ = StartServer(port_, dir_ + "/data", dir_ + "/server.log", extra);
    ASSERT_TRUE(server_) << ReadFile(dir_ + "/server.log");
  }
  void Restart(std::vector<std::string> extra = {}) {
    server_->Signal(SIGTERM);
    ASSERT_TRUE(server_->Wait(10s).has_value()) << "server did not stop";
    Start(extra);
  }
  std::vector<std::string> MtArgv(std::vector<std::string> args) {
    std::vector<std::string> argv = {
        "/usr/bin/env", "-u",           "MENTAT_TOKEN",          "-u",
        "NO_COLOR",     "HOME=" + dir_, "MENTAT_ADDR=" + Addr(), Runfile("cmd/mt/mt")};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  CommandResult Mt(std::vector<std::string> args) { return RunCommand(MtArgv(std::move(args))); }
  std::string Addr() { return "http://127.0.0.1:" + std::to_string(port_); }
  void Apply(const std::string& name, const std::string& manifest) {
    std::string f = dir_ + "/" + name + ".yaml";
    WriteFile(f, manifest);
    auto r = Mt({"apply", "-f", f});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  void Service(const std::string& name, const std::string& extra = "") {
    Apply(name, "name: " + name + "\ndriver: exec\ncommand: /bin/sleep\nargs: [\"120\"]\n" + extra);
  }
  int64_t Revision() {
    return Json::parse(HttpGet(port_, "/healthz").second).value("revision", int64_t{-1});
  }
  // The status a watch from `rv` gets, without reading its stream.
  int WatchStatus(int64_t rv) {
    httplib::Client cli("127.0.0.1", port_);
    cli.set_read_timeout(5, 0);
    int status = 0;
    cli.Get(
        "/v1/services?watch=true&resourceVersion=" + std::to_string(rv),
        [&](const httplib::Response& res) {
          status = res.status;
          return res.status != 200;  // a stream: the status is all we wanted
        },
        [](const char*, size_t) { return true; });
    return status;
  }

  std::string dir_;
  int port_ = 0;
  std::unique_ptr<Process> server_;
};

TEST_F(MtGetTest, TablesShowControllerAndAgentStatus) {
  Start({"--dev", "--node-name", "e2e-node"});
  Service("web", "count: 2\n");
  ASSERT_TRUE(WaitFor(
      [&] {
        return Has(Mt({"get", "services"}).out, "\nweb +exec +2/2 +2 +Running +[0-9]+s\n");
      },
      20s))
      << Mt({"get", "services", "-o", "wide"}).out << server_->Log();
  auto services = Mt({"get", "services"});
  EXPECT_TRUE(Has(services.out, "^NAME +DRIVER +READY +UP-TO-DATE +STATUS +AGE\n")) << services.out;

  auto allocs = Mt({"get", "allocations"});
  EXPECT_TRUE(Has(allocs.out, "^NAME +SERVICE +NODE +STATUS +RESTARTS +AGE\n")) << allocs.out;
  EXPECT_TRUE(Has(allocs.out, "\nweb-0 +web +e2e-node +Running +0 +[0-9]+s\n")) << allocs.out;
  EXPECT_TRUE(Has(allocs.out, "\nweb-1 +web +e2e-node +Running +0 +[0-9]+s\n")) << allocs.out;
  auto wide = Mt({"get", "allocs", "-o", "wide"});
  EXPECT_TRUE(Has(wide.out, "\nweb-0 +web +e2e-node +Running +0 +[0-9]+s +[0-9]+ +running\n"))
      << wide.out;

  // Nodes: `mt nodes` and `mt get nodes` are the same table; the drivers that work here (this
  // test runs as root, so sandboxes do too).
  auto nodes = Mt({"nodes"});
  ASSERT_EQ(nodes.exit_code, 0) << nodes.err;
  EXPECT_TRUE(Has(nodes.out, "^NAME +STATUS +DRIVERS +AGE\ne2e-node +Ready +docker!?,exec,hull,sandbox +[0-9]+s\n$"))
      << nodes.out;
  EXPECT_TRUE(Has(Mt({"get", "nodes"}).out, "^NAME +STATUS +DRIVERS +AGE\ne2e-node +Ready +docker!?,exec,hull,sandbox "));
  EXPECT_TRUE(Has(Mt({"nodes", "-o", "wide"}).out,
                  "NAME +STATUS +DRIVERS +AGE +HEARTBEAT +CPUS\ne2e-node +Ready +docker!?,exec,hull,sandbox +[0-9]+s +"
                  "[0-9]+s ago +[0-9]+\n"));
  EXPECT_EQ(Mt({"nodes", "-o", "name"}).out, "node/e2e-node\n");

  // What cannot be placed says so: Pending, with the reason in -o wide.
  Apply("dock", "name: dock\ndriver: qemu\nimage: /opt/vm/dock.img\n");
  ASSERT_TRUE(WaitFor(
      [&] {
        return Has(Mt({"get", "services", "-o", "wide"}).out,
                   "\ndock +qemu +0/1 +1 +Pending +[0-9]+s +cannot place allocations: 0/1 nodes "
                   "available: 1 lack driver qemu\n");
      },
      20s))
      << Mt({"get", "services", "-o", "wide"}).out;
  EXPECT_TRUE(Has(Mt({"get", "allocations", "dock-0"}).out, "\ndock-0 +dock +<none> +Pending +0"));

  // KIND/NAME works as in kubectl; a missing name is an error, exit 1; an unknown kind, 2.
  EXPECT_TRUE(Has(Mt({"get", "service/web"}).out, "\nweb +exec +2/2"));
  auto missing = Mt({"get", "services", "nope"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("error: Service \"nope\" not found"), std::string::npos)
      << missing.err;
  auto unknown = Mt({"get", "gizmos"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("unknown resource type \"gizmos\""), std::string::npos);
}

TEST_F(MtGetTest, WatchResumesAcrossAServerRestart) {
  Start();
  Service("before");
  Process watch(MtArgv({"get", "services", "-w"}), dir_ + "/watch.log");
  ASSERT_TRUE(WaitFor([&] { return Has(ReadFile(dir_ + "/watch.log"), "\nbefore +exec "); }, 10s))
      << ReadFile(dir_ + "/watch.log");

  Restart();
  Service("after");
  // The change made after the restart reaches the watch that was open before it.
  EXPECT_TRUE(WaitFor([&] { return Has(ReadFile(dir_ + "/watch.log"), "\nafter +exec "); }, 20s))
      << ReadFile(dir_ + "/watch.log");
  std::string log = ReadFile(dir_ + "/watch.log");
  EXPECT_NE(log.find("watch interrupted"), std::string::npos) << log;
  EXPECT_TRUE(watch.Running()) << log;
  // A named watch follows only its object.
  Process one(MtArgv({"get", "services", "after", "-w"}), dir_ + "/one.log");
  ASSERT_TRUE(WaitFor([&] { return Has(ReadFile(dir_ + "/one.log"), "\nafter +exec "); }, 10s));
  ASSERT_EQ(Mt({"delete", "services", "before", "after"}).exit_code, 0);
  EXPECT_TRUE(WaitFor([&] { return Has(ReadFile(dir_ + "/one.log"), "\\(deleted\\)\n"); }, 10s))
      << ReadFile(dir_ + "/one.log");
  EXPECT_EQ(ReadFile(dir_ + "/one.log").find("before"), std::string::npos);
}

TEST_F(MtGetTest, WatchListsAgainWhenItsHistoryIsGone) {
  std::vector<std::string> short_history = {"--history-revisions",   "5", "--history-seconds", "0",
                                            "--compaction-interval", "1"};
  Start(short_history);
  Service("one");
  Service("two");
  Process watch(MtArgv({"get", "services", "-w"}), dir_ + "/watch.log");
  ASSERT_TRUE(WaitFor([&] { return Has(ReadFile(dir_ + "/watch.log"), "\ntwo +exec "); }, 10s))
      << ReadFile(dir_ + "/watch.log");

  // The watcher sleeps through a restart and many changes; the revision it holds is
  // compacted away meanwhile.
  watch.Signal(SIGSTOP);
  int64_t held = Revision();
  Restart(short_history);
  ASSERT_EQ(Mt({"delete", "service", "two"}).exit_code, 0);
  Service("three");
  for (int i = 0; i < 8; ++i) Service("filler-" + std::to_string(i));
  ASSERT_TRUE(WaitFor([&] { return WatchStatus(held) == 410; }, 20s)) << "history not compacted";
  watch.Signal(SIGCONT);

  EXPECT_TRUE(WaitFor([&] { return Has(ReadFile(dir_ + "/watch.log"), "\nthree +exec "); }, 20s))
      << ReadFile(dir_ + "/watch.log");
  std::string log = ReadFile(dir_ + "/watch.log");
  EXPECT_TRUE(Has(log, "\ntwo +exec .*\\(deleted\\)\n")) << log;
  EXPECT_TRUE(Has(log, "\nfiller-7 +exec ")) << log;
  EXPECT_NE(log.find("is gone; listing again"), std::string::npos) << log;
  // And it keeps following after the new list.
  Service("four");
  EXPECT_TRUE(WaitFor([&] { return Has(ReadFile(dir_ + "/watch.log"), "\nfour +exec "); }, 10s))
      << ReadFile(dir_ + "/watch.log");
}

}  // namespace
}  // namespace mentat::e2e
