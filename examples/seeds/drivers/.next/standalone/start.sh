#!/bin/sh
# The build output of my-nextjs-app (seed 000): `rootfs: ./.next/standalone` is packed and
# uploaded by `mt apply`, and this tree is the app's directory in the sandbox (/app). A real
# `next build` with output: "standalone" writes server.js and its node_modules here.
cd "$(dirname "$0")" || exit 1
exec node server.js
