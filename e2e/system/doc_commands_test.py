"""Every command block of the pages in PAGES, run as written (doc_blocks.py says how blocks are
read), each page on its own, so the docs cannot rot. docs/getting-started.md, for one, runs
the quick start, looks around, stops and restarts the server, deletes, and runs a separate
agent, comparing each output with the page's.

As written, with these exceptions, so that it can run beside a developer's own Mentat:
  - a Checkout: the repository overlaid in a private mount namespace with a fresh /tmp, so
    .mentat/ and /tmp/... are the test's own;
  - the page's ports (4646, 4650, 18080) are free ports of the test's, in commands, outputs and
    examples/quickstart/hello.yaml, and MENTAT_PORT/MENTAT_ADDR point at the first;
  - a `mentat-server` with no --listen is given the first of them;
  - "vm", the host name of the machine the outputs were captured on, is this host's name.
Afterwards every process left in the namespace is stopped.
"""
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

PAGES = ["docs/getting-started.md"]
PAGE_PORTS = [4646, 4650, 18080]
CAPTURED_HOST = "vm"
READ_ONLY = re.compile(r"^(curl|ls|cat|tail|head|jq|mt (get|nodes|describe|logs))\b")
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
        hello_path = "examples/quickstart/hello.yaml"
        with open(os.path.join(systest.REPO, hello_path)) as f:
            hello = systest.remap_ports(f.read(), self.ports)
        api = self.ports[4646]
        self.checkout = systest.Checkout(
            files={hello_path: hello},
            env={"MENTAT_PORT": str(api), "MENTAT_ADDR": "http://127.0.0.1:%d" % api})
        self.shell = Shell(self.checkout)
        self.bg = 0

    def tearDown(self):
        self.shell.close()
        self.checkout.close()  # stops what the page started, in the shell's namespace

    def command(self, text):
        text = systest.remap_ports(text, self.ports)
        m = re.search(r"(^|[\s/])mentat-server(?=\s|$)", text)
        if m and "--listen" not in text:
            at = m.end()
            text = text[:at] + " --listen 127.0.0.1:%d" % self.ports[4646] + text[at:]
        return text

    def expected(self, lines):
        host = socket.gethostname()
        return [re.sub(r"(?<![\w.-])%s(?![\w.-])" % CAPTURED_HOST, host,
                       systest.remap_ports(l, self.ports)) for l in lines]

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
            want = self.expected(shown)
            want_error = bool(want) and want[0].startswith("error:")
            retry = READ_ONLY.match(cmd) is not None
            deadline = time.monotonic() + (RETRY_SECONDS if retry else 0)
            while True:
                rc, out = self.shell.run(cmd)
                ok = rc is not None and (rc != 0) == want_error and doc_blocks.output_matches(want, out)
                if ok or time.monotonic() >= deadline:
                    break
                time.sleep(0.5)  # pacing between reads of a state the page says is reached
            self.assertTrue(ok, "%s:%d: `%s` (exit %s) printed:\n%s\nThe page shows:\n%s" % (
                page, block.line_no, cmd, rc, out, "\n".join(want)))

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
            if block.lang == "sh":
                self.run_sh(page, block)
            elif block.lang == "console":
                self.run_console(page, block)
            else:
                continue
            ran += 1
        self.assertGreater(ran, 0, "%s has no command blocks" % page)


# One test per page: test_getting_started for docs/getting-started.md.
for _page in PAGES:
    _name = "test_" + os.path.splitext(os.path.basename(_page))[0].replace("-", "_")
    setattr(DocCommandsTest, _name, lambda self, page=_page: self.run_page(page))


if __name__ == "__main__":
    unittest.main()
