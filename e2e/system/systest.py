"""Helpers for the system tests: the checks that run the repository's own scripts and docs as a
user would, outside `bazel test` (the scripts call Bazel themselves). scripts/system_tests.py
runs them after the Bazel tests; scripts/test.sh counts them in its closing line.

What they share:
  - free ports on 127.0.0.1 and temporary directories, removed afterwards;
  - a Checkout: a private mount namespace in which the repository is overlaid (writes, such as
    .mentat/, go to a temporary upper directory and vanish with it) and /tmp is a fresh tmpfs,
    so a test may run the quick start as written beside a developer's own running server;
  - waiting on a condition with a deadline, never a bare sleep.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout, interval=0.2):
    """Calls condition() until it returns a true value (returned) or `timeout` seconds pass
    (None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)  # pacing between checks of a condition, not a wait for state


def remap_ports(text, ports):
    """`text` with each port number of `ports` ({old: new}) replaced where it stands alone."""
    for old, new in ports.items():
        text = re.sub(r"(?<![0-9])%d(?![0-9])" % old, str(new), text)
    return text


def port_open(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Checkout:
    """The repository in a private mount namespace: overlaid, so whatever a script writes into
    it (.mentat/, a remapped manifest) lands in a temporary upper directory, and with a fresh
    /tmp. `files` ({repo-relative path: text}) are written into the overlay first. `binds`
    (repo-relative directories) are directories of the test's own, outside the overlay, mounted
    over those paths: overlayfs cannot be the upper layer of another overlay, so a dev server
    whose agent runs sandboxes keeps its data in one. Commands run with `run` (each in the
    namespace, cwd the repository) or `argv` (to start a persistent bash)."""

    def __init__(self, files=None, env=None, binds=()):
        # Not under /tmp, which the namespace replaces: the test reads what lands here.
        self.dir = tempfile.mkdtemp(prefix="mentat-systest-", dir="/var/tmp")
        self.upper = os.path.join(self.dir, "upper")
        self.work = os.path.join(self.dir, "work")
        os.makedirs(self.upper)
        os.makedirs(self.work)
        for rel, text in (files or {}).items():
            path = os.path.join(self.upper, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
        self.binds = list(binds)
        for n, _ in enumerate(self.binds):
            os.makedirs(os.path.join(self.dir, "bind.%d" % n))
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.runs = 0

    def prelude(self):
        """The shell lines that make the namespace's view (and record it, for close)."""
        self.runs += 1
        binds = "".join(
            "mkdir -p {repo}/{rel}\nmount --bind {dir}/bind.{i} {repo}/{rel}\n".format(
                repo=REPO, rel=rel, dir=self.dir, i=i) for i, rel in enumerate(self.binds))
        return (
            "set -e\n"
            "readlink /proc/self/ns/mnt > {dir}/ns.{n}\n"
            "mount -t overlay overlay -o lowerdir={repo},upperdir={upper},workdir={work} {repo}\n"
            "{binds}"
            "mount -t tmpfs -o mode=1777 tmpfs /tmp\n"
            "cd {repo}\n"
            "set +e\n"
        ).format(repo=REPO, upper=self.upper, work=self.work, dir=self.dir, n=self.runs,
                 binds=binds)

    def argv(self, script):
        return ["unshare", "--mount", "--propagation", "private", "bash", "-c",
                self.prelude() + script]

    def run(self, script, timeout):
        """Runs `script` (bash) in the namespace; returns (exit code, output)."""
        p = subprocess.run(self.argv(script), env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
        return p.returncode, p.stdout.decode("utf-8", "replace")

    def close(self):
        """Stops every process still in one of its namespaces (servers, workloads), then
        removes its files."""
        for n in range(1, self.runs + 1):
            try:
                with open(os.path.join(self.dir, "ns.%d" % n)) as f:
                    stop_namespace(f.read().strip())
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def stop_namespace(ns):
    """SIGTERM, then SIGKILL, to every process whose mount namespace is `ns`."""
    def members():
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.readlink("/proc/%s/ns/mnt" % entry) == ns:
                        pids.append(int(entry))
                except OSError:
                    pass
        return pids

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in members():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if wait_for(lambda: not members(), 10):
            return


def task_processes(namespace):
    """The pids of live processes an agent started for a task in `namespace` (their environment
    holds MENTAT_TASK_ID=<namespace>.<allocation>)."""
    marker = ("\0MENTAT_TASK_ID=%s." % namespace).encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as f:
                if marker in b"\0" + f.read():
                    pids.append(int(entry))
        except OSError:
            pass
    return pids


def kill_task_processes(namespace):
    """SIGKILL to what task_processes finds: a failed test leaves no workload to the next."""
    for pid in task_processes(namespace):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def kill_pidfile_process(path, timeout=15):
    """SIGTERM to the pid in `path` (if it runs), then SIGKILL if it outlives `timeout`."""
    try:
        with open(path) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not wait_for(lambda: not os.path.exists("/proc/%d" % pid), timeout):
        os.kill(pid, signal.SIGKILL)


def run(argv, env=None, timeout=120, input=None):
    """Runs argv; returns (exit code, stdout, stderr) as text."""
    p = subprocess.run(argv, env=env, input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
