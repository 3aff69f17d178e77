#!/usr/bin/env bash
# Runs every Mentat test. Installs what is missing first (fast when all is present), builds,
# runs `bazel test //...`, then the system tests (e2e/system: the quick start, the doc pages'
# commands and every example, run as a user would), and ends with one line:
# `N passed, N failed`. Arguments go to `bazel test`.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh || { echo "0 passed, 1 failed"; exit 1; }

# Tests that need real components start them themselves; services the test harness needs
# that must exist before tests run are started here.
# dockerd (docker.io; no systemd here): started if its socket does not answer, with the
# local/busybox:1 image the docker tests use. The tests also run it themselves if needed.
scripts/dockerd.sh || echo "warning: dockerd could not be started; the docker tests will fail" >&2

# Seccomp kills are reported by name from the kernel's audit records, which kauditd prints
# through the printk rate limit (10 per 5 s by default). The escape batteries and the profile
# proofs kill dozens of processes in a few seconds, in parallel: a dropped record would fail the
# test that asserts the name (docs/hull.md, "A seccomp kill, reported by name").
if [ "$(id -u)" -eq 0 ] && [ -w /proc/sys/kernel/printk_ratelimit_burst ]; then
  [ "$(cat /proc/sys/kernel/printk_ratelimit_burst)" -ge 500 ] || echo 500 > /proc/sys/kernel/printk_ratelimit_burst
fi

targets=$(bazel query 'tests(//...)' 2>/dev/null | sort)
if [ -z "$targets" ]; then
  echo "bazel query found no tests"
  echo "0 passed, 1 failed"
  exit 1
fi
bep=$(mktemp /tmp/mentat-bep.XXXXXX.json)
bazel test //... --keep_going --build_event_json_file="$bep" "$@"
bazel_rc=$?
# The system tests run the scripts, docs and examples against the binaries just built.
system=$(mktemp /tmp/mentat-system.XXXXXX.json)
# Debian's python3: a version manager's python3 (pyenv's shim) puts its own directories first in
# PATH for the system tests, whose quick start then runs `bazel build` with another PATH than
# `bazel test` had. C++ actions take PATH into their cache key, so every binary was built twice.
py=/usr/bin/python3
[ -x "$py" ] || py=python3
"$py" scripts/system_tests.py "$system"
"$py" scripts/count_tests.py "$bep" "$(bazel info bazel-testlogs 2>/dev/null)" --system "$system" $targets
count_rc=$?
rm -f "$bep" "$system"
if [ $bazel_rc -ne 0 ] || [ $count_rc -ne 0 ]; then exit 1; fi
exit 0
