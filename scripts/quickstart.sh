#!/usr/bin/env bash
# The quick start: installs what is missing, builds Mentat, starts a dev server (embedded store
# under ./.mentat, an in-process agent, 127.0.0.1:4646), applies examples/quickstart/hello.yaml
# and shows it become Ready. The server keeps running; the end says how to stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/deps.sh
echo "==> building"
bazel build //cmd/mt //cmd/mentat-server //cmd/mentat-agent

bin="$root/bazel-bin/cmd"
mt="$bin/mt/mt"
export MENTAT_ADDR=http://127.0.0.1:4646
mkdir -p .mentat

if curl -fsS "$MENTAT_ADDR/healthz" >/dev/null 2>&1; then
  echo "==> a Mentat server already answers on $MENTAT_ADDR; using it"
else
  echo "==> starting mentat-server --dev (log: .mentat/server.log)"
  # Copies, so a later `bazel build` cannot swap the binary under the running server.
  cp -f "$bin/mentat-server/mentat-server" .mentat/mentat-server
  nohup .mentat/mentat-server --dev --data-dir .mentat >>.mentat/server.log 2>&1 &
  echo $! >.mentat/server.pid
  for _ in $(seq 1 300); do
    curl -fsS "$MENTAT_ADDR/healthz" >/dev/null 2>&1 && break
    if ! kill -0 "$(cat .mentat/server.pid)" 2>/dev/null; then
      echo "mentat-server exited; its log:" >&2
      tail -20 .mentat/server.log >&2
      exit 1
    fi
    sleep 0.1
  done
  curl -fsS "$MENTAT_ADDR/healthz" >/dev/null || { echo "server did not come up" >&2; exit 1; }
fi

echo "==> mt apply -f examples/quickstart/hello.yaml"
"$mt" apply -f examples/quickstart/hello.yaml

echo "==> waiting for hello to become Ready"
ready=""
for _ in $(seq 1 600); do
  line=$("$mt" get services hello 2>/dev/null | tail -n +2 || true)
  if [ "$line" != "${last:-}" ]; then
    echo "    $line"
    last=$line
  fi
  if echo "$line" | grep -qE '\s1/1\s+Running'; then ready=yes; break; fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "hello did not become Ready within 60 s:" >&2
  "$mt" get services hello -o yaml >&2 || true
  exit 1
fi

echo
"$mt" get services
echo
"$mt" get allocations -o wide
echo
echo "==> hello answers on http://127.0.0.1:18080/ :"
page=$(curl -fsS http://127.0.0.1:18080/)
printf '%s\n' "$page" | head -n 5
cat <<MSG

Mentat is running. Try:
  export PATH=$bin/mt:\$PATH
  mt get services -w          # live reconcile status (Ctrl-C to stop watching)
  mt get allocations -o wide
To stop:
  mt delete service hello                   # stops the workload
  kill \$(cat $root/.mentat/server.pid)     # stops the server (workloads would keep running)
MSG
