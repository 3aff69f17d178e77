#!/usr/bin/env bash
# Runs the benchmarks of bench/, installing the peers they measure against (etcd-server).
#   scripts/bench.sh [apply_ready|store|watch_fanout|sandbox|hull]...   default: all
# Results are printed; record notable runs in bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
source scripts/deps.sh >/dev/null
mentat_install_packages etcd-server bubblewrap runc
which=${*:-apply_ready store watch_fanout sandbox hull}
for b in $which; do
  echo "==> bench/${b}_bench"
  bazel run "//bench:${b}_bench" 2>/dev/null
done
