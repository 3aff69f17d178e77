"""The README's main command, run as written: scripts/quickstart.sh, twice, on ports and a data
directory of the test's own (MENTAT_PORT, MENTAT_HOME), in a Checkout whose hello.yaml serves
on a free port (so a developer's own quick start may run beside it).

  - it exits 0, having shown hello become ready, and prints the page hello serves;
  - every driver this machine can run is healthy on its node (exec, sandbox, hull and docker:
    the script installs sandbox-init and hull, and starts dockerd);
  - nothing of Bazel's sandbox debug output reaches the user;
  - a second run reuses the running server and still exits 0;
  - when hello cannot come up, it exits non-zero and says why: the conditions, the events and
    the workload's last stderr lines.
"""
import json
import os
import unittest

import systest

HELLO = "examples/quickstart/hello.yaml"
DRIVERS_HERE = {"exec", "sandbox", "hull", "docker"}


class QuickstartTest(unittest.TestCase):
    def setUp(self):
        self.api_port = systest.free_port()
        self.app_port = systest.free_port()
        with open(os.path.join(systest.REPO, HELLO)) as f:
            self.hello = systest.remap_ports(f.read(), {18080: self.app_port})
        self.checkout = None

    def tearDown(self):
        if self.checkout:
            home = os.path.join(self.checkout.dir, "home")
            mt = os.path.join(home, "bin", "mt")
            env = dict(os.environ, MENTAT_ADDR="http://127.0.0.1:%d" % self.api_port)
            if os.path.exists(mt):
                systest.run([mt, "delete", "service", "hello", "--ignore-not-found"], env=env)
                systest.wait_for(lambda: not systest.port_open(self.app_port), 15)
            systest.kill_pidfile_process(os.path.join(home, "server.pid"))
            self.checkout.close()

    def quickstart(self, hello_text):
        """Runs the script as written; its data directory is outside the namespace's /tmp, so
        the test can read the server's pid file and stop it afterwards."""
        if not self.checkout:
            self.checkout = systest.Checkout(files={HELLO: hello_text})
            self.checkout.env["MENTAT_PORT"] = str(self.api_port)
            self.checkout.env["MENTAT_HOME"] = os.path.join(self.checkout.dir, "home")
        return self.checkout.run("exec scripts/quickstart.sh", timeout=1800)

    def nodes(self):
        mt = os.path.join(self.checkout.dir, "home", "bin", "mt")
        env = dict(os.environ, MENTAT_ADDR="http://127.0.0.1:%d" % self.api_port)
        rc, out, err = systest.run([mt, "get", "nodes", "-o", "json"], env=env)
        self.assertEqual(rc, 0, err)
        return json.loads(out)["items"]

    def test_runs_twice_and_every_driver_is_healthy(self):
        rc, out = self.quickstart(self.hello)
        self.assertEqual(rc, 0, out)
        self.assertIn("==> mt run examples/quickstart/hello.yaml", out)
        self.assertIn("1 service ready after", out)
        self.assertIn("Directory listing for /", out)  # the page hello serves
        self.assertNotIn("linux-sandbox", out)  # Bazel's sandbox debug lines
        nodes = self.nodes()
        self.assertEqual(len(nodes), 1)
        drivers = nodes[0]["status"]["drivers"]
        for name in sorted(DRIVERS_HERE):
            self.assertIn(name, drivers)
            self.assertTrue(drivers[name].get("healthy"),
                            "%s is unhealthy: %s" % (name, drivers[name].get("detail")))

        rc, out = self.quickstart(self.hello)
        self.assertEqual(rc, 0, out)
        self.assertIn("already answers on http://127.0.0.1:%d; using it" % self.api_port, out)
        self.assertIn("service/hello unchanged", out)
        self.assertIn("Directory listing for /", out)

    def test_a_workload_that_crashes_fails_the_script_saying_why(self):
        crashing = self.hello.replace(
            'args: ["-m", "http.server"',
            'args: ["-c", "import sys; sys.exit(\'hello cannot start: no config\')", "-m", "http.server"')
        self.assertNotEqual(crashing, self.hello)
        rc, out = self.quickstart(crashing)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("is crash-looping", out)
        self.assertIn("hello cannot start: no config", out)  # its stderr
        self.assertIn("Conditions:", out)
        self.assertIn("Events:", out)
        self.assertIn("hello did not come up", out)


if __name__ == "__main__":
    unittest.main()
