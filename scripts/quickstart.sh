#!/usr/bin/env bash
# The quick start: installs what is missing, builds Mentat, starts dockerd and a dev server
# (embedded store and an in-process agent with every driver this machine can run), then runs
# examples/quickstart/hello.yaml with `mt run`, which follows it until it is up, and fetches
# its page. The server keeps running; the end says how to use and stop it. A second run reuses
# the server that answers.
#
# Environment (the defaults are what docs/getting-started.md describes):
#   MENTAT_PORT  the server's port on 127.0.0.1 (default 4646)
#   MENTAT_HOME  the dev server's directory: store, agent, binaries, log and pid
#                (default .mentat in the repository)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
port=${MENTAT_PORT:-4646}
home=${MENTAT_HOME:-$root/.mentat}
manifest=examples/quickstart/hello.yaml

bash scripts/deps.sh
echo "==> building"
# sandbox-init is PID 1 of sandbox and hull containers; log-relay writes each task's stdout and
# stderr with their times; hull is the container runtime's command.
bazel build //cmd/mt //cmd/mentat-server //cmd/mentat-agent //cmd/sandbox-init //cmd/log-relay //cmd/hull

echo "==> starting dockerd if it is not running (the docker driver)"
scripts/dockerd.sh

# Copies, so a later `bazel build` cannot swap a binary under the running server; each is
# renamed into place, so a running one is never overwritten. The server finds sandbox-init and
# log-relay next to itself.
bin="$home/bin"
mkdir -p "$bin"
for target in mt/mt mentat-server/mentat-server mentat-agent/mentat-agent sandbox-init/sandbox-init \
  log-relay/log-relay hull/hull; do
  name=$(basename "$target")
  cp -f "bazel-bin/cmd/$target" "$bin/.$name.new"
  mv -f "$bin/.$name.new" "$bin/$name"
done
mt="$bin/mt"
export MENTAT_ADDR="http://127.0.0.1:$port"

if curl -fsS --max-time 2 "$MENTAT_ADDR/healthz" >/dev/null 2>&1; then
  echo "==> a Mentat server already answers on $MENTAT_ADDR; using it"
else
  echo "==> starting mentat-server --dev on $MENTAT_ADDR (log: $home/server.log)"
  nohup "$bin/mentat-server" --dev --data-dir "$home" --listen "127.0.0.1:$port" \
    >>"$home/server.log" 2>&1 </dev/null &
  echo $! >"$home/server.pid"
  deadline=$(($(date +%s) + 60))
  until curl -fsS --max-time 2 "$MENTAT_ADDR/healthz" >/dev/null 2>&1; do
    if ! kill -0 "$(cat "$home/server.pid")" 2>/dev/null; then
      echo "mentat-server exited; the end of its log:" >&2
      tail -20 "$home/server.log" >&2
      exit 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "mentat-server did not answer on $MENTAT_ADDR within 60 s; the end of its log:" >&2
      tail -20 "$home/server.log" >&2
      exit 1
    fi
    sleep 0.1
  done
fi

echo "==> mt run $manifest"
# Applies it and follows it until it has stayed up; on failure it says why (conditions, events,
# the last lines of a crashing workload's stderr) and exits non-zero.
if ! "$mt" run "$manifest" --timeout 120s; then
  echo "==> hello did not come up (see above); the server's log is $home/server.log" >&2
  exit 1
fi

echo
"$mt" nodes
echo
"$mt" get services
echo
"$mt" get allocations -o wide
app_port=$(sed -n 's/^port: *\([0-9][0-9]*\).*/\1/p' "$manifest")
echo
echo "==> hello answers on http://127.0.0.1:$app_port/ :"
page=$(curl -fsS --max-time 10 "http://127.0.0.1:$app_port/")
# A here-string, not a pipe: head leaving early would kill printf with SIGPIPE, and pipefail
# would turn that into the script's exit status (141).
head -n 5 <<<"$page"
cat <<MSG

Mentat is running. Try:
  export PATH=$bin:\$PATH MENTAT_ADDR=$MENTAT_ADDR
  mt get services -w          # live reconcile status (Ctrl-C to stop watching)
  mt logs hello               # the workload's output
  mt run examples/seeds/drivers/my-api.yaml    # FastAPI in a sandbox (docs/sandbox.md)
To stop:
  mt delete service hello     # stops the workload
  kill \$(cat $home/server.pid)     # stops the server (workloads keep running)
MSG
