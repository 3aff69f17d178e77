// mt describe and mt wait against a real server with its in-process agent: describe shows the
// spec, the conditions with their reasons and messages as the controller wrote them (the
// placement failure verbatim) and a service's allocations (found by the mentat.io/service
// label); wait follows objects that do not exist yet, says what it saw last when it times
// out, and waits for deletions.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>


#include "e2e/server_fixture.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;

class MtDescribeWaitTest : public ServerFixture {
 protected:
  void SetUp() override { StartWith("mt-describe", {"--dev", "--node-name", "e2e-node"}); }
};

TEST_F(MtDescribeWaitTest, DescribeShowsSpecConditionsAndAllocations) {
  Apply("name: web\ndriver: exec\ncount: 2\ncommand: /bin/sleep\nargs: [\"120\"]\n"
        "labels:\n  app: web\n");
  auto ready = Mt({"wait", "--for=condition=Ready", "service/web", "--timeout=30s"});
  ASSERT_EQ(ready.exit_code, 0) << ready.err;
  EXPECT_EQ(ready.out, "service/web condition met\n");

  auto d = Mt({"describe", "service", "web"});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_TRUE(Has(d.out, "^Name: +web\nNamespace: +default\nKind: +Service\nLabels: +app=web\n"))
      << d.out;
  EXPECT_TRUE(Has(d.out, "\nGeneration: +1 \\(status observed 1\\)\n")) << d.out;
  EXPECT_TRUE(Has(d.out, "\nSpec:\n  args:\n    - \"120\"\n  command: /bin/sleep\n  count: 2\n"))
      << d.out;
  EXPECT_TRUE(Has(d.out, "\n  Phase: +Running\n")) << d.out;
  EXPECT_TRUE(Has(d.out,
                  "\nConditions:\n  TYPE +STATUS +REASON +SINCE +MESSAGE\n"
                  "  Ready +True +AllReplicasReady +[0-9]+s +2/2 ready\n"))
      << d.out;
  EXPECT_TRUE(Has(d.out,
                  "\nAllocations:\n  NAME +NODE +STATUS +RESTARTS +AGE +MESSAGE\n"
                  "  web-0 +e2e-node +Running +0 +[0-9]+s +running\n"
                  "  web-1 +e2e-node +Running +0 +[0-9]+s +running\n"))
      << d.out;

  // A placement failure: the controller's message, verbatim, with its reason.
  Apply("name: dock\ndriver: qemu\nimage: /opt/vm/dock.img\n");
  ASSERT_TRUE(WaitFor(
      [&] {
        return Has(Mt({"describe", "svc/dock"}).out, "Degraded +True +PlacementFailed");
      },
      20s))
      << Mt({"describe", "svc/dock"}).out;
  d = Mt({"describe", "svc/dock"});
  EXPECT_TRUE(Has(d.out,
                  "\n  Degraded +True +PlacementFailed +[0-9]+s +cannot place allocations: "
                  "0/1 nodes available: 1 lack driver qemu\n"))
      << d.out;
  EXPECT_TRUE(Has(d.out, "\n  dock-0 +<none> +Pending +0 +[0-9]+s\n")) << d.out;
  // ...and the event that says so, from the controller.
  EXPECT_TRUE(Has(d.out, "\nEvents:\n  TYPE +REASON +AGE +FROM +MESSAGE\n(.*\n)*  Warning +FailedScheduling +"
                         "[0-9]+s.* +service-controller +cannot place allocations: 0/1 nodes "
                         "available: 1 lack driver qemu\n"))
      << d.out;

  // A node: readiness, heartbeat, drivers, and the allocations placed on it.
  d = Mt({"describe", "node", "e2e-node"});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_TRUE(Has(d.out, "\n  Status: +Ready\n  Last Heartbeat: +[0-9T:Z-]+ \\([0-9]+s ago\\)\n"))
      << d.out;
  EXPECT_TRUE(Has(d.out, "\nDrivers:\n(  docker: .*\n)?  exec: +healthy")) << d.out;
  EXPECT_TRUE(Has(d.out, "\n  default +web-0 +web +Running")) << d.out;
  EXPECT_EQ(d.out.find("dock-0"), std::string::npos) << "dock-0 is placed nowhere";

  // An allocation: what the agent reported.
  d = Mt({"describe", "allocation/web-0"});
  EXPECT_TRUE(Has(d.out, "\n  Phase: +Running\n  Message: +running\n  PID: +[0-9]+\n")) << d.out;
  EXPECT_TRUE(Has(d.out, "  Ready +True +Running ")) << d.out;
  EXPECT_TRUE(Has(d.out, "\nEvents:\n(.*\n)*  Normal +Scheduled +[0-9]+s +service-controller +placed "
                         "default/web-0 on node e2e-node\n"))
      << d.out;
  // The agent sends its events off the reconcile path, a moment after the status.
  EXPECT_TRUE(WaitFor([&] {
    d = Mt({"describe", "allocation/web-0"});
    return Has(d.out, "  Normal +Started +[0-9]+s +agent/e2e-node +started on node e2e-node, pid ");
  }, 10s)) << d.out;

  auto missing = Mt({"describe", "service", "nope"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("Service \"nope\" not found"), std::string::npos) << missing.err;
}

TEST_F(MtDescribeWaitTest, WaitFollowsObjectsThatDoNotExistYet) {
  // Nothing there and a short timeout: it says what it waited for and that nothing came.
  auto early = Mt({"wait", "--for=condition=Ready", "service/later", "--timeout=1s"});
  EXPECT_EQ(early.exit_code, 1);
  EXPECT_NE(early.err.find("timed out after 1s waiting for service/later to be Ready=True; last "
                           "seen: it does not exist"),
            std::string::npos)
      << early.err;

  // Started first, it sees the service appear, start and become Ready.
  Process waiting(
      MtArgv({"wait", "--for", "condition=Ready", "services", "later", "--timeout", "30s"}),
      dir_ + "/wait.log");
  Apply("name: later\ndriver: exec\ncommand: /bin/sleep\nargs: [\"120\"]\n");
  auto status = waiting.Wait(35s);
  ASSERT_TRUE(status.has_value()) << ReadFile(dir_ + "/wait.log");
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << ReadFile(dir_ + "/wait.log");
  EXPECT_EQ(ReadFile(dir_ + "/wait.log"), "service/later condition met\n");
  EXPECT_NE(Mt({"get", "services", "later"}).out.find("1/1"), std::string::npos);

  // --for=delete.
  Process deleting(MtArgv({"wait", "--for=delete", "service/later", "--timeout=30s"}),
                   dir_ + "/delete.log");
  ASSERT_EQ(Mt({"delete", "service", "later"}).exit_code, 0);
  status = deleting.Wait(35s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << ReadFile(dir_ + "/delete.log");
  EXPECT_EQ(ReadFile(dir_ + "/delete.log"), "service/later deleted\n");
  EXPECT_EQ(Mt({"wait", "--for=delete", "service/never-was"}).exit_code, 0);
}

TEST_F(MtDescribeWaitTest, WaitTimeoutSaysWhatItSawLast) {
  Apply("name: dock\ndriver: qemu\nimage: /opt/vm/dock.img\n");
  // Degraded comes true (no node has qemu); Ready never does.
  auto degraded = Mt({"wait", "--for=condition=Degraded", "service/dock", "--timeout=20s"});
  EXPECT_EQ(degraded.exit_code, 0) << degraded.err;
  auto r = Mt({"wait", "--for=condition=Ready", "service/dock", "--timeout=2s"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("error: timed out after 2s waiting for service/dock to be Ready=True; last "
                       "seen: phase Pending; Ready=False (Pending): cannot place allocations: 0/1 "
                       "nodes available: 1 lack driver qemu; "),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("Degraded=True (PlacementFailed)"), std::string::npos) << r.err;

  // Usage errors are exit 2 and send nothing.
  EXPECT_EQ(Mt({"wait", "--for=ready", "service/dock"}).exit_code, 2);
  EXPECT_EQ(Mt({"wait", "--for=condition=Ready", "service/dock", "--timeout=soon"}).exit_code, 2);
  EXPECT_EQ(Mt({"wait", "--for=condition=Ready", "services"}).exit_code, 2);
  EXPECT_EQ(Mt({"wait", "service/dock"}).exit_code, 2);
}

}  // namespace
}  // namespace mentat::e2e
