// Placement decisions from node fingerprints: feasibility reasons, spread, bin-packing and
// profile constraints.
#include "controllers/scheduler.h"

#include <gtest/gtest.h>

namespace mentat {
namespace {

using namespace std::chrono_literals;

Json Node(const std::string& name, Json drivers, int64_t memory_mb, Json labels = Json::object(),
          bool ready = true) {
  return {{"kind", "Node"},
          {"metadata", {{"name", name}, {"labels", labels}}},
          {"status",
           {{"ready", ready},
            {"lastHeartbeat", NowRfc3339()},
            {"drivers", drivers},
            {"capacity", {{"cpus", 2}, {"cpu_mhz", 2000}, {"memory_mb", memory_mb}, {"disk_mb", 10000}}}}}};
}

Json Healthy(std::initializer_list<const char*> names) {
  Json d = Json::object();
  for (const char* n : names) d[n] = {{"healthy", true}};
  return d;
}

Json Alloc(const std::string& service, const std::string& node, int64_t memory_mb) {
  return {{"kind", "Allocation"},
          {"metadata", {{"name", service + "-x"}, {"namespace", "default"}}},
          {"spec",
           {{"service", service},
            {"nodeName", node},
            {"task", {{"driver", "exec"}, {"resources", {{"memory_mb", memory_mb}}}}}}}};
}

Json Task(const std::string& driver, int64_t memory_mb = 0) {
  Json t = {{"driver", driver}};
  if (memory_mb) t["resources"] = {{"memory_mb", memory_mb}};
  return t;
}

// The scheduler reads objects it does not own: these keep them alive for a test.
std::vector<const Json*> Ptrs(const std::vector<Json>& v) {
  std::vector<const Json*> out;
  for (const auto& j : v) out.push_back(&j);
  return out;
}

PlacementRequest Request(const std::string& service, const std::string& driver) {
  PlacementRequest r;
  r.service = "default/" + service;
  r.driver = driver;
  return r;
}

TEST(Scheduler, SaysWhyNoNodeFitsPerKindOfNode) {
  std::vector<Json> nodes = {Node("a", Healthy({"exec"}), 4096), Node("b", Healthy({"exec"}), 4096),
                            Node("c", Healthy({"exec", "firecracker"}), 512)};
  Scheduler s(Ptrs(nodes), {}, 15s);
  std::string why;
  EXPECT_EQ(s.Place(Request("vm", "firecracker"), Task("firecracker", 1024), &why), "");
  EXPECT_EQ(why, "0/3 nodes available: 2 lack driver firecracker, 1 insufficient memory");
}

TEST(Scheduler, NotReadyNodesAndAnEmptyClusterAreNamed) {
  std::string why;
  Scheduler empty({}, {}, 15s);
  EXPECT_EQ(empty.Place(Request("web", "exec"), Task("exec"), &why), "");
  EXPECT_EQ(why, "0/0 nodes available: no agent has registered");
  std::vector<Json> down_nodes = {Node("a", Healthy({"exec"}), 4096, Json::object(), false)};
  Scheduler down(Ptrs(down_nodes), {}, 15s);
  EXPECT_EQ(down.Place(Request("web", "exec"), Task("exec"), &why), "");
  EXPECT_EQ(why, "0/1 nodes available: 1 not ready");
}

TEST(Scheduler, SpreadsAServiceThenPacks) {
  // "a" already holds 3 GB of another service: packing prefers it for a new service ...
  std::vector<Json> nodes = {Node("a", Healthy({"exec"}), 4096), Node("b", Healthy({"exec"}), 4096)};
  std::vector<Json> allocs = {Alloc("db", "a", 3072)};
  Scheduler s(Ptrs(nodes), Ptrs(allocs), 15s);
  std::string why;
  std::string first = s.Place(Request("web", "exec"), Task("exec", 512), &why);
  EXPECT_EQ(first, "a");
  s.Commit(first, "default/web", Task("exec", 512));
  // ... but the service's second replica goes to the node without one.
  EXPECT_EQ(s.Place(Request("web", "exec"), Task("exec", 512), &why), "b");
}

TEST(Scheduler, CommittedRequestsUseUpCapacity) {
  std::vector<Json> nodes = {Node("a", Healthy({"exec"}), 1024)};
  Scheduler s(Ptrs(nodes), {}, 15s);
  std::string why;
  ASSERT_EQ(s.Place(Request("web", "exec"), Task("exec", 600), &why), "a");
  s.Commit("a", "default/web", Task("exec", 600));
  EXPECT_EQ(s.Place(Request("web", "exec"), Task("exec", 600), &why), "");
  EXPECT_EQ(why, "0/1 nodes available: 1 insufficient memory");
}

TEST(Scheduler, CpuPercentCountsAgainstTheNodesMhz) {
  // 2 cores of 2000 MHz: 4000 MHz in all; 150% of a core is 3000 MHz.
  std::vector<Json> nodes = {Node("a", Healthy({"exec"}), 4096)};
  Scheduler s(Ptrs(nodes), {}, 15s);
  Json task = {{"driver", "exec"}, {"resources", {{"cpu_percent", 150}}}};
  std::string why;
  ASSERT_EQ(s.Place(Request("web", "exec"), task, &why), "a");
  s.Commit("a", "default/web", task);
  EXPECT_EQ(s.Place(Request("web", "exec"), task, &why), "");
  EXPECT_EQ(why, "0/1 nodes available: 1 insufficient cpu");
}

TEST(Scheduler, ProfileAllowedNodesNeedTheLabel) {
  std::vector<Json> nodes = {Node("public", Healthy({"exec"}), 4096),
                            Node("ops", Healthy({"exec"}), 4096, {{"internal-only", "true"}})};
  Scheduler s(Ptrs(nodes), {}, 15s);
  PlacementRequest req = Request("collector", "exec");
  req.allowed_nodes = {"internal-only"};
  req.profile = "exec-internal";
  std::string why;
  EXPECT_EQ(s.Place(req, Task("exec"), &why), "ops");

  std::vector<Json> public_only = {Node("public", Healthy({"exec"}), 4096)};
  Scheduler none(Ptrs(public_only), {}, 15s);
  EXPECT_EQ(none.Place(req, Task("exec"), &why), "");
  EXPECT_EQ(why, "0/1 nodes available: 1 not labelled internal-only (profile exec-internal)");
}

}  // namespace
}  // namespace mentat
