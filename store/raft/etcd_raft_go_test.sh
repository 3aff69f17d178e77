#!/usr/bin/env bash
# Runs etcd's Raft library's own tests (go.etcd.io/etcd/raft and its packages) on the source
# Debian installs (golang-etcd-server-dev), with Debian's Go: the engine under Mentat's store,
# checked on this machine as its authors check it.
set -euo pipefail
cache=$(mktemp -d "${TEST_TMPDIR:-/tmp}/gocache.XXXXXX")
trap 'chmod -R u+w "$cache"; rm -rf "$cache"' EXIT
export HOME=$cache GOCACHE=$cache/go-build GOPATH=/usr/share/gocode GO111MODULE=off
go test -count=1 go.etcd.io/etcd/raft/...
