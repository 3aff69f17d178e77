#!/usr/bin/env bash
# Runs a README command on a fresh Debian 12 machine: a bare bookworm root filesystem made with
# debootstrap (minbase: no build tools, no Bazel, nothing of Mentat's), run as a Docker container
# on a clean clone of this repository's HEAD (uncommitted changes are not in it). What the
# command installs, builds and starts happens inside, as on a new machine; the time it took and
# the last lines it printed are reported at the end, and its output is kept in the log file.
#
#   scripts/fresh-check.sh [COMMAND]     (default: scripts/quickstart.sh)
#   scripts/fresh-check.sh scripts/test.sh
#
# Docker runs it with explicit capabilities (--privileged fails on hosts whose root lacks
# CAP_SYS_RESOURCE) and the host's cgroup tree, so the drivers' namespaces, cgroups, seccomp and
# a Docker daemon of its own (for the docker driver) work inside. Two things keep the container
# a machine rather than a container: /proc without Docker's masks over its paths (a user
# namespace may mount a new /proc only where the whole of it is visible: hull's rootless mode),
# and /root/.cache (Bazel's outputs and its tests' data) and /var/tmp (the system tests'
# checkouts) on the host's own filesystem, as on a machine's disk: the container's root is an
# overlayfs, which cannot hold an overlay's upper layer (the sandbox's and hull's roots, the
# system tests' overlaid checkouts). The image is built once and
# kept (FRESH_REBUILD=1 makes it again). The one thing it takes from the host is the machine's
# own trust: the CA certificates added under /usr/local/share/ca-certificates, which this
# workplace's machines carry for their egress proxy (the npm registry is reached through it).
# Env: FRESH_LOG (default /var/tmp/mentat-fresh-check.log), FRESH_MIRROR (default the host's
# Debian mirror), FRESH_KEEP=1 keeps the container's scratch directory.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
command=${1:-scripts/quickstart.sh}
extra_cas=/usr/local/share/ca-certificates
ca_tag=$(cat "$extra_cas"/*.crt 2>/dev/null | sha256sum | cut -c1-12)
image=mentat-fresh:bookworm-$ca_tag
log=${FRESH_LOG:-/var/tmp/mentat-fresh-check.log}
mirror=${FRESH_MIRROR:-http://deb.debian.org/debian}

need() { command -v "$1" >/dev/null 2>&1; }
if ! need debootstrap || ! need docker; then
  echo "==> installing debootstrap and docker.io"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap docker.io >/dev/null
fi
scripts/dockerd.sh --no-image

if [ "${FRESH_REBUILD:-}" = 1 ] || ! docker image inspect "$image" >/dev/null 2>&1; then
  echo "==> building $image with debootstrap (bookworm, minbase) from $mirror"
  root=$(mktemp -d /var/tmp/mentat-fresh-root.XXXXXX)
  debootstrap --variant=minbase --include=ca-certificates,git,sudo bookworm "$root" "$mirror" \
    >"$root.debootstrap.log" 2>&1 || { tail -20 "$root.debootstrap.log" >&2; exit 1; }
  printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" >"$root/etc/apt/sources.list.d/debian.sources"
  rm -f "$root/etc/apt/sources.list"
  if ls "$extra_cas"/*.crt >/dev/null 2>&1; then
    cp "$extra_cas"/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null
  fi
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash"]' - "$image" >/dev/null
  rm -rf "$root" "$root.debootstrap.log"
fi

scratch=$(mktemp -d /var/tmp/mentat-fresh.XXXXXX)
[ "${FRESH_KEEP:-}" = 1 ] || trap 'rm -rf "$scratch"' EXIT
echo "==> a clean clone of $(git rev-parse --short HEAD) in $scratch/mentat"
git clone -q --no-local "$repo" "$scratch/mentat"
mkdir -p "$scratch/docker" "$scratch/cache" "$scratch/var-tmp"
chmod 1777 "$scratch/var-tmp"

# The seccomp tests read kill records through the kernel's printk rate limit, a host-wide
# setting that a container cannot change (scripts/test.sh raises it where it may).
[ -w /proc/sys/kernel/printk_ratelimit_burst ] && echo 500 >/proc/sys/kernel/printk_ratelimit_burst

caps=()
for c in SYS_ADMIN NET_ADMIN NET_RAW SYS_PTRACE SYS_CHROOT MKNOD SETPCAP SETFCAP DAC_READ_SEARCH \
  IPC_LOCK IPC_OWNER SYS_NICE SYSLOG AUDIT_CONTROL AUDIT_READ AUDIT_WRITE LINUX_IMMUTABLE \
  SYS_MODULE SYS_RAWIO SYS_TIME SYS_PACCT SYS_TTY_CONFIG LEASE WAKE_ALARM BLOCK_SUSPEND MAC_ADMIN \
  MAC_OVERRIDE; do
  caps+=(--cap-add "$c")
done
name=mentat-fresh-$$
echo "==> running \`$command\` in a fresh bookworm container ($name); output: $log"
start=$(date +%s)
set +e
docker run --rm --name "$name" --hostname fresh "${caps[@]}" \
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
  --security-opt systempaths=unconfined \
  --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
  --device /dev/fuse --device /dev/kmsg \
  --tmpfs /tmp:exec,mode=1777 \
  -v "$scratch/mentat:/root/mentat" -v "$scratch/docker:/var/lib/docker" \
  -v "$scratch/cache:/root/.cache" -v "$scratch/var-tmp:/var/tmp" \
  -w /root/mentat "$image" bash -c "$command" >"$log" 2>&1
rc=$?
set -e
took=$(( $(date +%s) - start ))
echo "==> \`$command\` exited $rc after $((took / 60))m$((took % 60))s; its last lines:"
tail -n 15 "$log"
exit $rc
