// Resource limits end to end, through the real server and its in-process agent (needs root and
// this host's cgroups): an exec service over its memory limit is OOM-killed, and the Allocation
// status (oomKilled), an OOMKilled event and `mt describe` all say so; a CPU limit applied with
// `mt apply` is the quota of the task's cgroup, which goes away with the service.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <regex>

#include "e2e/harness.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

class ResourcesE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("resources");
    port_ = FreePort();
    server_ = StartServer(port_, dir_ + "/data", dir_ + "/server.log",
                          {"--dev", "--node-name", "res-node"});
    ASSERT_TRUE(server_) << ReadFile(dir_ + "/server.log");
    env_ = {"MENTAT_ADDR=http://127.0.0.1:" + std::to_string(port_), "HOME=" + dir_};
  }
  void TearDown() override {
    Mt({"delete", "services", "--all"});
    WaitFor([&] { return Mt({"get", "allocations", "-o", "name"}).out.empty(); }, 20s);
  }
  CommandResult Mt(std::vector<std::string> args) {
    args.insert(args.begin(), Runfile("cmd/mt/mt"));
    return RunCommand(args, env_);
  }
  void Apply(const std::string& name, const std::string& manifest) {
    WriteFile(dir_ + "/" + name + ".yaml", manifest);
    auto r = Mt({"apply", "-f", dir_ + "/" + name + ".yaml"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  Json Allocation(const std::string& name) {
    auto [code, body] = HttpGet(port_, "/v1/allocations/" + name);
    return code == 200 ? Json::parse(body) : Json::object();
  }
  // Its status, {} until the agent has written one.
  Json StatusOf(const std::string& name) {
    Json a = Allocation(name);
    return a.contains("status") && a["status"].is_object() ? a["status"] : Json::object();
  }
  // The event with `reason` about Allocation `name`, from the API's list.
  std::optional<Json> AllocationEvent(const std::string& name, const std::string& reason) {
    auto [code, body] = HttpGet(port_, "/v1/events?namespace=default");
    if (code != 200) return std::nullopt;
    Json list = Json::parse(body);
    for (const auto& e : list["items"]) {
      const Json& ref = e["spec"]["involvedObject"];
      if (ref.value("kind", "") == "Allocation" && ref.value("name", "") == name &&
          e["spec"].value("reason", "") == reason) {
        return e;
      }
    }
    return std::nullopt;
  }

  std::string dir_;
  int port_ = 0;
  std::unique_ptr<Process> server_;
  std::vector<std::string> env_;
};

// The cgroup (v1 hierarchy `controller`) of a process, from /proc/<pid>/cgroup.
std::string CgroupOf(int pid, const std::string& controller) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/cgroup");
  std::regex line_re("^[0-9]+:([^:]*):(.*)$");
  for (std::string line; std::getline(f, line);) {
    std::smatch m;
    if (!std::regex_match(line, m, line_re)) continue;
    std::string ctrls = "," + m[1].str() + ",";
    if (ctrls.find("," + controller + ",") != std::string::npos) return m[2].str();
  }
  return "";
}

TEST_F(ResourcesE2eTest, AMemoryHogIsOomKilledAndStatusEventAndDescribeSaySo) {
  // dd reads into one 512 MiB buffer; the service may have 32 MiB.
  Apply("hog",
        "name: hog\ndriver: exec\ncommand: /bin/dd\n"
        "args: [\"if=/dev/zero\", \"of=/dev/null\", \"bs=512M\", \"count=1\"]\n"
        "restart: never\nresources:\n  memory: 32Mi\n");
  ASSERT_TRUE(WaitFor([&] { return StatusOf("hog-0").value("oomKilled", false); }, 30s))
      << Allocation("hog-0").dump() << "\n" << ReadFile(dir_ + "/server.log");
  Json st = StatusOf("hog-0");
  EXPECT_EQ(st.value("phase", ""), "Failed") << st.dump();
  EXPECT_EQ(st.value("signal", 0), 9) << st.dump();
  EXPECT_NE(st.value("message", "").find("OOM-killed: exceeded its 32 MiB memory limit"),
            std::string::npos)
      << st.dump();

  ASSERT_TRUE(WaitFor([&] { return AllocationEvent("hog-0", "OOMKilled").has_value(); }, 20s))
      << HttpGet(port_, "/v1/events?namespace=default").second;
  Json ev = *AllocationEvent("hog-0", "OOMKilled");
  EXPECT_EQ(ev["spec"]["type"], "Warning");
  EXPECT_NE(ev["spec"].value("message", "").find("exceeded its 32 MiB memory limit"),
            std::string::npos)
      << ev.dump();

  auto d = Mt({"describe", "allocation", "hog-0"});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_TRUE(std::regex_search(d.out, std::regex("\n  OOM Killed: +true\n"))) << d.out;
  EXPECT_TRUE(std::regex_search(d.out, std::regex("Warning +OOMKilled"))) << d.out;
}

TEST_F(ResourcesE2eTest, ACpuLimitIsTheQuotaOfTheTasksCgroupWhichGoesWithTheService) {
  Apply("capped",
        "name: capped\ndriver: exec\ncommand: /bin/sleep\nargs: [\"600\"]\ncpu: 25%\n"
        "pids: 16\n");
  auto ready = Mt({"wait", "--for=condition=Ready", "service/capped", "--timeout=30s"});
  ASSERT_EQ(ready.exit_code, 0) << ready.err << ReadFile(dir_ + "/server.log");
  int pid = StatusOf("capped-0").value("pid", 0);
  ASSERT_GT(pid, 0) << Allocation("capped-0").dump();
  std::string group = CgroupOf(pid, "cpu");
  ASSERT_EQ(group.rfind("/mentat/default.capped-0-", 0), 0u) << group;
  std::string dir = "/sys/fs/cgroup/cpu" + group;
  EXPECT_EQ(ReadFile(dir + "/cpu.cfs_quota_us"), "25000\n");
  EXPECT_EQ(ReadFile(dir + "/cpu.cfs_period_us"), "100000\n");
  EXPECT_EQ(ReadFile("/sys/fs/cgroup/pids" + CgroupOf(pid, "pids") + "/pids.max"), "16\n");

  ASSERT_EQ(Mt({"delete", "service", "capped"}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return ::access(dir.c_str(), F_OK) != 0; }, 20s))
      << dir << " outlived its service";
  EXPECT_FALSE(ProcessAlive(pid));
}

}  // namespace
}  // namespace mentat::e2e
