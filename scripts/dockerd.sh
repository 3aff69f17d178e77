#!/bin/sh
# Starts dockerd in the background when its socket does not answer (no systemd here: CI starts
# with nothing running), then waits for GET /_ping with a deadline. Idempotent: a dockerd that
# already answers is left alone. Also imports the busybox image the docker tests use
# (local/busybox:1, from busybox-static) when it is missing: there is no registry access.
#   scripts/dockerd.sh [--no-image]
# Env: DOCKER_SOCKET (default /var/run/docker.sock), DOCKERD_LOG (default /tmp/mentat-dockerd.log),
#      DOCKERD_WAIT seconds (default 60).
set -eu
SOCK=${DOCKER_SOCKET:-/var/run/docker.sock}
LOG=${DOCKERD_LOG:-/tmp/mentat-dockerd.log}
WAIT=${DOCKERD_WAIT:-60}

ping() { curl -sf --max-time 2 --unix-socket "$SOCK" http://localhost/_ping >/dev/null 2>&1; }

if ! ping; then
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "dockerd.sh: dockerd is not installed (apt-get install -y docker.io)" >&2
    exit 1
  fi
  # A stale pid file from a dockerd that died would make the new one refuse to start.
  if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid
  fi
  setsid dockerd -H "unix://$SOCK" >>"$LOG" 2>&1 </dev/null &
  end=$(( $(date +%s) + WAIT ))
  until ping; do
    if [ "$(date +%s)" -ge "$end" ]; then
      echo "dockerd.sh: dockerd did not answer on $SOCK within ${WAIT}s; see $LOG:" >&2
      tail -20 "$LOG" >&2
      exit 1
    fi
    sleep 0.2
  done
fi

if [ "${1:-}" != "--no-image" ]; then
  if ! curl -sf --unix-socket "$SOCK" http://localhost/images/local/busybox:1/json >/dev/null; then
    BB=$(command -v busybox || true)
    [ -x /bin/busybox ] && BB=/bin/busybox
    if [ -z "$BB" ] || ! "$BB" --list >/dev/null 2>&1 || ldd "$BB" >/dev/null 2>&1; then
      echo "dockerd.sh: a static busybox is needed (apt-get install -y busybox-static)" >&2
      exit 1
    fi
    tmp=$(mktemp -d)
    mkdir -p "$tmp/root/bin" "$tmp/root/tmp" "$tmp/root/etc" "$tmp/root/www"
    cp "$BB" "$tmp/root/bin/busybox"
    for app in $("$BB" --list); do [ "$app" = busybox ] || ln -sf busybox "$tmp/root/bin/$app"; done
    chmod 1777 "$tmp/root/tmp"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$tmp/root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$tmp/root/etc/group"
    tar -C "$tmp/root" -cf "$tmp/rootfs.tar" .
    # The API, not the CLI: the image is created from the tar as `docker import` would.
    curl -sf --unix-socket "$SOCK" -X POST -H 'Content-Type: application/x-tar' \
      --data-binary @"$tmp/rootfs.tar" \
      'http://localhost/images/create?fromSrc=-&repo=local/busybox&tag=1&changes=CMD%20%5B%22%2Fbin%2Fsh%22%5D' >/dev/null
    rm -rf "$tmp"
  fi
fi
