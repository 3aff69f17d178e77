// The sandbox driver through the whole stack (real server, its in-process agent, real
// namespaces, overlayfs and cgroups; root, so no-sandbox): the seed's "Python FastAPI in
// sandbox" example, with python3's http.server standing in for uvicorn, on the python312 base
// (built on first use from runtimes/sandbox/bases/python312.yaml) with the app's own files over it,
// serving HTTP on the host's network; mt exec and mt logs into it; the node reporting the
// driver and the base.
#include <gtest/gtest.h>

#include <filesystem>

#include "e2e/server_fixture.h"

namespace mentat::e2e {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

class SandboxE2E : public ServerFixture {
 protected:
  void SetUp() override { StartWith("sandbox-e2e", {"--dev", "--node-name", "sandbox-node"}); }
};

TEST_F(SandboxE2E, ThePythonExampleServesHttpFromASandbox) {
  // The app, next to the manifest as in the seed: `rootfs: ./app`. mt apply packs and uploads
  // it; the agent fetches it and the sandbox shows it at /app, where the app starts.
  std::string app = dir_ + "/app";
  fs::create_directories(app);
  WriteFile(app + "/index.html", "<h1>hello from a sandbox</h1>\n");
  int port = FreePort();
  Apply("name: my-api\n"
        "driver: sandbox\n"
        "base: python312\n"
        "rootfs: ./app\n"
        "command: /usr/bin/python3\n"
        "args: [\"-m\", \"http.server\", \"" + std::to_string(port) + "\", \"--bind\", \"127.0.0.1\"]\n"
        "env:\n"
        "  PORT: \"" + std::to_string(port) + "\"\n"
        "resources:\n"
        "  memory: 128m\n"
        "port: " + std::to_string(port) + "\n");
  auto wait = Mt({"wait", "--for=condition=Ready", "service/my-api", "--timeout=90s"});
  ASSERT_EQ(wait.exit_code, 0) << wait.err << Mt({"describe", "service/my-api"}).out
                               << ReadFile(dir_ + "/server.log");
  // Served from inside the sandbox, over the host's network.
  auto [code, body] = HttpGet(port, "/index.html");
  EXPECT_EQ(code, 200);
  EXPECT_EQ(body, "<h1>hello from a sandbox</h1>\n");

  // The allocation runs under sandbox-init, as PID 1 of its own namespace.
  Json alloc = Get("/v1/allocations/my-api-0");
  ASSERT_TRUE(alloc.is_object());
  EXPECT_EQ(alloc["status"].value("phase", ""), "Running") << alloc.dump();
  // The base has python and a shell, not coreutils: python looks around.
  auto exec = Mt({"exec", "my-api-0", "--", "python3", "-c",
                  "import os, platform, socket; "
                  "print(open('/proc/1/cmdline').read().replace(chr(0), ' ')); "
                  "print('Python', platform.python_version()); print(socket.gethostname()); "
                  "print(' '.join(sorted(os.listdir('/dev'))))"});
  ASSERT_EQ(exec.exit_code, 0) << exec.err;
  EXPECT_NE(exec.out.find("sandbox-init --status-fd 3 -- /usr/bin/python3 -m http.server"), std::string::npos) << exec.out;
  EXPECT_NE(exec.out.find("Python 3."), std::string::npos) << exec.out;
  EXPECT_NE(exec.out.find("my-api-0"), std::string::npos) << exec.out;
  EXPECT_NE(exec.out.find("fd null random shm stderr stdin stdout urandom zero"), std::string::npos) << exec.out;
  // http.server logs requests on stderr.
  EXPECT_TRUE(WaitFor([&] {
    return Mt({"logs", "my-api-0", "--stderr"}).out.find("\"GET /index.html HTTP/1.1\" 200") != std::string::npos;
  }, 10s)) << Mt({"logs", "my-api-0", "--stderr"}).out;

  // The node says it runs sandboxes, and which bases it has built, with their real versions.
  Json node = Get("/v1/nodes/sandbox-node");
  ASSERT_TRUE(node.is_object());
  Json sandbox = node["status"]["drivers"]["sandbox"];
  EXPECT_TRUE(sandbox.value("healthy", false)) << sandbox.dump();
  EXPECT_TRUE(WaitFor([&] {
    Json n = Get("/v1/nodes/sandbox-node");
    for (const auto& b : n["status"]["drivers"]["sandbox"].value("bases", Json::array())) {
      if (b.value("name", "") == "python312" && b.value("version", "").rfind("Python 3.", 0) == 0) return true;
    }
    return false;
  }, 20s)) << Get("/v1/nodes/sandbox-node")["status"]["drivers"]["sandbox"].dump();
}

TEST_F(SandboxE2E, AFailedSandboxStartSaysWhichStepAndWhy) {
  Apply("name: broken\n"
        "driver: sandbox\n"
        "base: static\n"
        "command: /bin/sh\n"
        "args: [\"-c\", \"sleep 300\"]\n"
        "cwd: /no/such/dir\n"
        "restart: never\n");
  ASSERT_TRUE(WaitFor([&] {
    Json a = Get("/v1/allocations/broken-0");
    return a.is_object() && a["status"].value("message", "").find("working directory") != std::string::npos;
  }, 60s)) << Get("/v1/allocations/broken-0").dump();
  Json a = Get("/v1/allocations/broken-0");
  EXPECT_NE(a["status"].value("message", "").find("/no/such/dir: No such file or directory"), std::string::npos)
      << a.dump();
}

TEST_F(SandboxE2E, LimitHitsShowInTheAllocationStatus) {
  // A fork bomb in slow motion against pids.max, and a memory hog against memory.max.
  Apply("name: bomb\n"
        "driver: sandbox\n"
        "base: static\n"
        "command: /bin/sh\n"
        "args: [\"-c\", \"while :; do sleep 300 & done\"]\n"
        "max_pids: 16\n"
        "---\n"
        "name: hog\n"
        "driver: sandbox\n"
        "base: static\n"
        "command: /bin/dd\n"
        "args: [\"if=/dev/zero\", \"of=/dev/null\", \"bs=256M\", \"count=1\"]\n"
        "memory: 32m\n"
        "restart: never\n");
  EXPECT_TRUE(WaitFor([&] {
    Json a = Get("/v1/allocations/bomb-0");
    return a.is_object() && a["status"].value("pidsLimitHits", 0) > 0;
  }, 60s)) << Get("/v1/allocations/bomb-0").dump();
  auto events = [&] { return HttpGet(port_, "/v1/events?namespace=default").second; };
  EXPECT_TRUE(WaitFor([&] { return events().find("\"reason\":\"PidsLimitReached\"") != std::string::npos; }, 20s))
      << events();
  EXPECT_TRUE(WaitFor([&] {
    Json a = Get("/v1/allocations/hog-0");
    return a.is_object() && a["status"].value("oomKilled", false);
  }, 60s)) << Get("/v1/allocations/hog-0").dump();
  Json hog = Get("/v1/allocations/hog-0");
  EXPECT_NE(hog["status"].value("message", "").find("OOM-killed"), std::string::npos) << hog.dump();
  EXPECT_TRUE(WaitFor([&] { return events().find("\"reason\":\"OOMKilled\"") != std::string::npos; }, 20s))
      << events();
}

}  // namespace
}  // namespace mentat::e2e
