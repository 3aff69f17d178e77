"""Every example manifest (examples/), against a dev server of the test's own:
  - `mt apply -R -f examples/` applies them as a whole (skipping the bare hull manifests, with a
    note), and deletes as a whole;
  - each file applied alone: every example this machine can run becomes Ready and serves, and
    every other one says why not, with the reason examples/seeds/README.md gives (no KVM, no
    registry, a binary, rootfs or manifest only its authors have). One at a time, because all
    of them together ask a 2-core node for more CPU than it has.

The examples are copied first, with their host ports moved to free ones (uvicorn's default port
8000, which my-api's seed text does not set, stays), and applied into a namespace of the test's
own, so their containers and ports do not meet a developer's.
"""
import os
import re
import shutil
import subprocess
import tempfile
import unittest
import urllib.request

import systest

PORTS = [18080, 8080, 8081, 8082, 3000]
NAMESPACE = "examples"
# Runnable here: the port, a path and what the page there holds.
RUNNABLE = {
    "hello": (18080, "/", "Directory listing for /"),
    "web": (8080, "/", "hello from docker"),
    "web-hardened": (8081, "/passwd", "root:x:0:0"),  # busybox httpd serving /etc
    "legacy-web": (8082, "/passwd", "root:x:0:0"),
    "my-api": (8000, "/", '"service": "my-api"'),
    "my-nextjs-app": (3000, "/", "my-nextjs-app"),
}
# Not runnable on any machine here, and the words of the reason the status gives.
NOT_HERE = {
    "streamforge": r"lack driver firecracker",
    "oxidestore": r"lack driver firecracker",
    "api-gateway": r"lack driver firecracker",
    "api-service": r"registry\.example/api-service:latest is not on this node",
    "web-frontend": r"registry\.example/web-frontend:latest is not on this node",
    "node-agent-exec": r"cannot run /opt/bin/node-agent",
    "node-agent": r"not labelled internal-only",
    # drivers/titan.yaml names the seed's manifest; hull/titan.json, applied alone, its rootfs.
    "titan": r"/etc/hull/titan\.json is not a file on this node|"
             r"/var/lib/hull/rootfs/titan is not a directory",
    "web-app": r"/opt/apps/nextjs-standalone",
    # The seed-003 hull manifests, each applied alone: their rootfs are the seed's.
    "webapp": r"/var/lib/hull/rootfs/webapp",
    "api-server": r"/var/lib/hull/rootfs/api-server",
    "worker": r"/var/lib/hull/rootfs/worker",
}
HULL_MANIFESTS = {"webapp", "api-server", "worker"}
LEGACY = "legacy-web"  # started by hand before Mentat, as examples/docker/adopted.yaml says


class ExamplesTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mentat-examples-", dir="/var/tmp")
        self.ports = {p: systest.free_port() for p in PORTS}
        self.examples = os.path.join(self.dir, "examples")
        shutil.copytree(os.path.join(systest.REPO, "examples"), self.examples)
        for root, _, files in os.walk(self.examples):
            for name in files:
                if name.endswith((".yaml", ".json")):
                    path = os.path.join(root, name)
                    with open(path) as f:
                        text = f.read()
                    with open(path, "w") as f:
                        f.write(systest.remap_ports(text, self.ports))
        self.api = systest.free_port()
        self.env = dict(os.environ, MENTAT_ADDR="http://127.0.0.1:%d" % self.api)
        self.mt = os.path.join(systest.REPO, "bazel-bin", "cmd", "mt", "mt")
        self.server = None
        self.legacy_started = False

    def tearDown(self):
        if self.server:
            systest.run([self.mt, "-n", NAMESPACE, "delete", "services", "--all"], env=self.env)
            systest.wait_for(lambda: self.mt_out("get", "allocations") == "", 60)
            systest.wait_for(lambda: not systest.task_processes(NAMESPACE), 60)
            self.server.terminate()
            self.server.wait(timeout=30)
        systest.kill_task_processes(NAMESPACE)
        if self.legacy_started:
            systest.run(["docker", "rm", "-f", LEGACY])
        shutil.rmtree(self.dir, ignore_errors=True)

    def mt_out(self, *args):
        rc, out, _ = systest.run([self.mt, "-n", NAMESPACE] + list(args), env=self.env)
        return out if rc == 0 else None

    def start(self):
        self.assertTrue(os.path.exists(self.mt), "build first: bazel build //cmd/...")
        for port in [8000]:
            self.assertFalse(systest.port_open(port), "port %d is taken: my-api (seed 000) "
                             "listens on uvicorn's default port; stop what holds it" % port)
        rc, out, err = systest.run(["docker", "ps", "-a", "--filter", "name=^%s$" % LEGACY,
                                    "--format", "{{.Names}}"])
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.strip(), "", "a container named %s exists already" % LEGACY)
        # As examples/docker/adopted.yaml's comment says, on the test's port.
        rc, out, err = systest.run(["docker", "run", "-d", "--name", LEGACY, "-p",
                                    "%d:80" % self.ports[8082], "local/busybox:1",
                                    "httpd", "-f", "-p", "80", "-h", "/etc"])
        self.assertEqual(rc, 0, err)
        self.legacy_started = True
        server = os.path.join(systest.REPO, "bazel-bin", "cmd", "mentat-server", "mentat-server")
        with open(os.path.join(self.dir, "server.log"), "w") as log:
            self.server = subprocess.Popen(
                [server, "--dev", "--data-dir", os.path.join(self.dir, "data"),
                 "--listen", "127.0.0.1:%d" % self.api], stdout=log, stderr=subprocess.STDOUT)
        self.assertTrue(systest.wait_for(lambda: systest.port_open(self.api), 60),
                        "the server did not come up")

    def page(self, port, path):
        try:
            url = "http://127.0.0.1:%d%s" % (port, path)
            return urllib.request.urlopen(url, timeout=5).read().decode()
        except OSError:
            return ""

    def apply(self, *args):
        rc, out, err = systest.run([self.mt, "-n", NAMESPACE, "apply"] + list(args),
                                   env=self.env, timeout=300)
        self.assertEqual(rc, 0, out + err)
        return out, err

    def delete_all(self):
        rc, out, err = systest.run([self.mt, "-n", NAMESPACE, "delete", "services", "--all"],
                                   env=self.env)
        self.assertEqual(rc, 0, out + err)
        self.assertTrue(systest.wait_for(lambda: self.mt_out("get", "allocations") == "", 120),
                        "allocations left: %s" % self.mt_out("get", "allocations"))
        # An allocation is gone from the store before its agent has stopped the task: the next
        # example may want the same port.
        self.assertTrue(systest.wait_for(lambda: not systest.task_processes(NAMESPACE), 60),
                        "task processes left: %s" % systest.task_processes(NAMESPACE))

    def check_runs(self, name):
        port, path, text = RUNNABLE[name]
        rc, out, err = systest.run(
            [self.mt, "-n", NAMESPACE, "wait", "--for=condition=Ready", "service/" + name,
             "--timeout", "300s"], env=self.env, timeout=330)
        self.assertEqual(rc, 0, "%s did not become Ready: %s%s" % (name, out, err))
        port = self.ports.get(port, port)
        self.assertTrue(systest.wait_for(lambda: text in self.page(port, path), 30),
                        "%s does not serve %r at :%d%s: %r" % (name, text, port, path,
                                                               self.page(port, path)))

    def check_says_why_not(self, name):
        reason = NOT_HERE[name]

        def says_why():
            out = self.mt_out("get", "services", name, "-o", "wide")
            return out if out and re.search(reason, out) else None

        self.assertTrue(systest.wait_for(says_why, 60), "%s does not say /%s/: %s" % (
            name, reason, self.mt_out("get", "services", name, "-o", "wide")))

    def test_the_whole_set_applies_and_deletes(self):
        self.start()
        out, err = self.apply("-R", "-f", self.examples)
        for name in sorted(HULL_MANIFESTS) + ["titan"]:
            self.assertIn("note: skipped %s/seeds/hull/%s.json: a hull manifest" % (
                self.examples, name), err)
        services = set(re.findall(r"^service/([a-z0-9-]+) created$", out, re.M))
        self.assertEqual(services, (set(RUNNABLE) | set(NOT_HERE)) - HULL_MANIFESTS, out)
        self.assertEqual(len(re.findall(r"^securityprofile/\S+ (created|configured)$", out, re.M)), 5, out)
        self.delete_all()

    def test_each_example_runs_or_says_why_not(self):
        self.start()
        files = []
        for root, _, names in os.walk(self.examples):
            files += [os.path.join(root, n) for n in names if n.endswith((".yaml", ".json"))]
        seen = set()
        for path in sorted(files):
            with self.subTest(example=os.path.relpath(path, self.examples)):
                out, _ = self.apply("-f", path)
                for name in re.findall(r"^service/([a-z0-9-]+) created$", out, re.M):
                    seen.add(name)
                    if name in RUNNABLE:
                        self.check_runs(name)
                    else:
                        self.assertIn(name, NOT_HERE, "an example this test does not know")
                        self.check_says_why_not(name)
                self.delete_all()
        self.assertEqual(seen, set(RUNNABLE) | set(NOT_HERE))


if __name__ == "__main__":
    unittest.main()
