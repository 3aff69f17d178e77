#!/usr/bin/env bash
# Installs the Debian packages Mentat builds and tests with, only when some are missing, and
# Node.js 22 for the node22 base (scripts/node22.sh).
# Sourced by quickstart.sh and test.sh; idempotent and fast (one dpkg-query) when all are present.
set -euo pipefail

MENTAT_BUILD_PACKAGES=(
  bazel-bootstrap g++ python3
  librocksdb-dev libyaml-cpp-dev nlohmann-json3-dev libcpp-httplib-dev libsimdjson-dev
  libseccomp-dev libcap-dev libgtest-dev libgmock-dev libcli11-dev
  libspdlog-dev libfmt-dev libcurl4-openssl-dev libarchive-dev libssl-dev
  libevent-dev libfuse3-dev fuse3 libgoogle-perftools-dev wrk openssl
  procps curl jq python3-jsonschema python3-yaml musl-tools busybox-static ca-certificates
  # hull's network "bridge": rtnetlink through libnl-route-3, NAT through nft and iptables.
  libnl-route-3-dev nftables iptables iproute2
  # hull's seccomp profiles are proven by running these runtimes (runtimes/hull:profiles_proof_test);
  # libacl1-dev has the libacl.a that the static hull's libarchive needs.
  nodejs erlang-base openjdk-17-jre-headless openjdk-17-jdk-headless libacl1-dev
  # The other static libraries the static //cmd/hull links (libarchive's -dev names none of them).
  libxml2-dev nettle-dev liblzma-dev zlib1g-dev libnl-3-dev
  # The docker driver's tests run a real dockerd (scripts/dockerd.sh starts it).
  docker.io
  # The replicated store's consensus: etcd's Raft library (its source, as Debian ships it) built
  # into a C archive by Debian's Go (store/raft). etcd-server is the peer its benchmarks measure.
  golang-go golang-etcd-server-dev etcd-server
  # The python312 sandbox base carries FastAPI and uvicorn (seed 000's my-api).
  python3-fastapi python3-uvicorn
)

mentat_missing_packages() {
  local missing=()
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$pkg")
    fi
  done
  echo "${missing[@]:-}"
}

mentat_install_packages() {
  local missing
  missing=$(mentat_missing_packages "$@")
  [ -z "$missing" ] && return 0
  echo "==> installing Debian packages: $missing"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  $sudo apt-get install -y -qq --no-install-recommends $missing
}

mentat_install_packages "${MENTAT_BUILD_PACKAGES[@]}"
# The node22 sandbox base's Node.js 22 and npm, from the npm registry (Debian 12 has Node.js 18).
bash "$(dirname "${BASH_SOURCE[0]}")/node22.sh"
