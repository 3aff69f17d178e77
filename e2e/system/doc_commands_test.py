"""Every command block of the pages in PAGES, run as written (doc_blocks.py says how blocks are
read), each page on its own, so the docs cannot rot. docs/getting-started.md, for one, runs
the quick start, looks around, stops and restarts the server, deletes, and runs a separate
agent, comparing each output with the page's.

As written, with these exceptions, so that it can run beside a developer's own Mentat:
  - a Checkout: the repository overlaid in a private mount namespace with a fresh /tmp, so
    .mentat/ and /tmp/... are the test's own (.mentat/ a directory outside the overlay, where
    sandboxes can put their own overlays);
  - the pages' ports (PAGE_PORTS: the API's 4646 and 4650, hello's 18080, the Docker
    examples' 8080 to 8083) are free ports of the test's, in commands, outputs, files the page
    writes and the example manifests (examples/), and MENTAT_PORT/MENTAT_ADDR point at the
    first;
  - a `mentat-server` with no --listen is given the first of them;
  - "vm", the host name of the machine the outputs were captured on, is this host's name (or,
    where they differ, the node and member name taken from it: its first label as a DNS label).
Afterwards the services left on the page's dev server (the first port) are deleted, so their
sandboxes and containers stop too, every process left in the namespace is stopped, and Docker
containers of Mentat's made meanwhile are removed.
"""
import json
import os
import random
import re
import select
import socket
import subprocess
import time
import unittest
import urllib.request

import doc_blocks
import systest

PAGES = ["docs/getting-started.md", "docs/sandbox.md", "docs/cli.md", "docs/security.md",
         "docs/api.md"]
PAGE_PORTS = [4646, 4650, 18080, 8080, 8081, 8082, 8083]
CAPTURED_HOST = "vm"
READ_ONLY = re.compile(
    r"^(curl|ls|cat|tail|head|jq|docker (ps|inspect)|mt (get|nodes|describe|logs|rollout history))\b")
RETRY_SECONDS = 60
COMMAND_SECONDS = 1800


class Shell:
    """One bash session in the Checkout's namespace, fed command by command."""

    def __init__(self, checkout):
        self.proc = subprocess.Popen(
            checkout.argv("exec bash --norc --noprofile 2>&1"), env=checkout.env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.pending = b""

    def run(self, command, timeout=COMMAND_SECONDS):
        """(exit code, output) of `command`; (None, output so far) if it did not finish."""
        marker = "__doc_test_%d__" % random.getrandbits(48)
        self.proc.stdin.write(("%s\nprintf '\\n%s %%d\\n' \"$?\"\n" % (command, marker)).encode())
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        out = self.pending
        needle = ("\n%s " % marker).encode()
        while needle not in out:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                return None, out.decode("utf-8", "replace")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return None, out.decode("utf-8", "replace")
            out += chunk
        before, rest = out.split(needle, 1)
        rc_text, _, self.pending = rest.partition(b"\n")
        return int(rc_text), before.decode("utf-8", "replace")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()


class DocCommandsTest(unittest.TestCase):
    def setUp(self):
        self.ports = {p: systest.free_port() for p in PAGE_PORTS}
        api = self.ports[4646]
        self.checkout = systest.Checkout(
            files=remapped_examples(self.ports), binds=[".mentat"],
            env={"MENTAT_PORT": str(api), "MENTAT_ADDR": "http://127.0.0.1:%d" % api})
        self.containers_before = mentat_containers()
        self.shell = Shell(self.checkout)
        self.bg = 0

    def tearDown(self):
        delete_services("http://127.0.0.1:%d" % self.ports[4646])
        self.shell.close()
        self.checkout.close()  # stops what the page started, in the shell's namespace
        left = [c for c in mentat_containers() if c not in self.containers_before]
        if left:
            subprocess.run(["docker", "rm", "-f"] + left, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)

    def command(self, text):
        text = systest.remap_ports(text, self.ports)
        m = re.search(r"(^|[\s/])mentat-server(?=\s|$)", text)
        if m and "--listen" not in text:
            at = m.end()
            text = text[:at] + " --listen 127.0.0.1:%d" % self.ports[4646] + text[at:]
        return text

    def expected(self, lines):
        """What the page shows, as this host would print it: each way "vm" may come out here
        (a node's and a cluster of one's name are the host name's first label made a DNS label,
        which differs from the host name on a host such as My_Box.example)."""
        host = socket.gethostname()
        label = re.sub(r"[^a-z0-9]", "-", host.split(".")[0].lower())[:63].strip("-") or "localhost"
        wants = []
        for name in dict.fromkeys([host, label]):
            wants.append([re.sub(r"(?<![\w.-])%s(?![\w.-])" % CAPTURED_HOST, name,
                                 systest.remap_ports(l, self.ports)) for l in lines])
        return wants

    def run_sh(self, page, block):
        background = block.directive and block.directive.startswith("background")
        for cmd in block.commands():
            cmd = self.command(cmd)
            if background:
                self.bg += 1
                log = os.path.join(self.checkout.dir, "background-%d.log" % self.bg)
                cmd = "{ %s ; } >%s 2>&1 </dev/null &" % (cmd, log)
            rc, out = self.shell.run(cmd)
            self.assertEqual(rc, 0, "%s:%d: `%s` exited %s:\n%s" % (page, block.line_no, cmd, rc, out))
        url = re.search(r"wait-for\s+(\S+)", block.directive or "")
        if url:
            target = systest.remap_ports(url.group(1), self.ports)

            def answers():
                try:
                    return urllib.request.urlopen(target, timeout=2).status == 200
                except OSError:
                    return False

            if not systest.wait_for(answers, 60):
                with open(log, errors="replace") as f:
                    self.fail("%s:%d: %s did not answer within 60 s; the command's output:\n%s" % (
                        page, block.line_no, target, f.read()[-3000:]))

    def run_console(self, page, block):
        for cmd, shown in block.transcript():
            cmd = self.command(cmd)
            wants = self.expected(shown)
            want = wants[0]
            want_error = doc_blocks.expects_failure(cmd, want)
            retry = READ_ONLY.match(cmd) is not None
            deadline = time.monotonic() + (RETRY_SECONDS if retry else 0)
            while True:
                rc, out = self.shell.run(cmd)
                ok = rc is not None and (rc != 0) == want_error and any(
                    doc_blocks.output_matches(w, out) for w in wants)
                if ok or time.monotonic() >= deadline:
                    break
                time.sleep(0.5)  # pacing between reads of a state the page says is reached
            self.assertTrue(ok, "%s:%d: `%s` (exit %s) printed:\n%s\nThe page shows:\n%s" % (
                page, block.line_no, cmd, rc, out, "\n".join(want)))

    def write_file(self, page, block):
        path = block.directive[len("file "):].strip()
        text = systest.remap_ports("\n".join(block.lines), self.ports)
        marker = "__doc_test_eof_%d__" % random.getrandbits(48)
        rc, out = self.shell.run("mkdir -p \"$(dirname '%s')\" && cat > '%s' <<'%s'\n%s\n%s" % (
            path, path, marker, text, marker))
        self.assertEqual(rc, 0, "%s:%d: writing %s failed:\n%s" % (page, block.line_no, path, out))

    def run_page(self, page):
        with open(os.path.join(systest.REPO, page)) as f:
            text = f.read()
        for cmd in doc_blocks.setup(text):
            rc, out = self.shell.run(self.command(cmd))
            self.assertEqual(rc, 0, "%s: setup `%s` exited %s:\n%s" % (page, cmd, rc, out))
        ran = 0
        for block in doc_blocks.blocks(text):
            if block.directive and block.directive.startswith("skip"):
                continue
            if block.directive and block.directive.startswith("file "):
                self.write_file(page, block)
                continue
            if block.lang == "sh":
                self.run_sh(page, block)
            elif block.lang == "console":
                self.run_console(page, block)
            else:
                continue
            ran += 1
        self.assertGreater(ran, 0, "%s has no command blocks" % page)


def remapped_examples(ports):
    """{path: text} of every example manifest that names one of `ports`, remapped."""
    out = {}
    for root, _, names in os.walk(os.path.join(systest.REPO, "examples")):
        for name in names:
            if name.endswith((".yaml", ".yml", ".json")):
                path = os.path.join(root, name)
                with open(path) as f:
                    text = f.read()
                remapped = systest.remap_ports(text, ports)
                if remapped != text:
                    out[os.path.relpath(path, systest.REPO)] = remapped
    return out


def mentat_containers():
    """The ids of Docker's containers that carry Mentat's labels (none without Docker)."""
    try:
        p = subprocess.run(["docker", "ps", "-aq", "--filter", "label=mentat.task"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return p.stdout.decode().split()


def delete_services(server):
    """Deletes every Service of a server that needs no token, and waits (up to 30 s) until
    their allocations are gone, so their workloads, in namespaces of their own, stop."""
    def get(path):
        try:
            with urllib.request.urlopen(server + path, timeout=5) as r:
                return json.load(r)
        except (OSError, ValueError):
            return None

    services = get("/v1/services")
    if not services:
        return
    for item in services.get("items", []):
        meta = item["metadata"]
        req = urllib.request.Request("%s/v1/services/%s?namespace=%s" % (
            server, meta["name"], meta.get("namespace", "default")), method="DELETE")
        try:
            urllib.request.urlopen(req, timeout=5).close()
        except OSError:
            pass
    systest.wait_for(lambda: not (get("/v1/allocations") or {}).get("items"), 30)


# One test per page: test_getting_started for docs/getting-started.md.
for _page in PAGES:
    _name = "test_" + os.path.splitext(os.path.basename(_page))[0].replace("-", "_")
    setattr(DocCommandsTest, _name, lambda self, page=_page: self.run_page(page))


if __name__ == "__main__":
    unittest.main()
