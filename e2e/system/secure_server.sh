#!/usr/bin/env bash
# For the doc-command test: a mentat-server as security.md sets one up, for pages that show
# what a client meets outside --dev (cli.md's https and token examples). In DIR: a CA and a
# certificate for 127.0.0.1 (ca.crt, server.crt, server.key), the server's data and log, and
# three tokens (admin.token, operator.token, reader.token: roles admin, operator, read-only).
# Returns once the server answers on https://127.0.0.1:PORT; it runs on in the background.
#   e2e/system/secure_server.sh PORT DIR
set -euo pipefail
port=$1
dir=$2
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mentat-test-ca \
  -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr \
  2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > san.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
  -extfile san.ext -out server.crt 2>/dev/null
nohup mentat-server --data-dir "$dir/data" --listen "127.0.0.1:$port" \
  --tls-cert server.crt --tls-key server.key --bootstrap-token-file admin.token \
  >>server.log 2>&1 </dev/null &
url="https://127.0.0.1:$port"
for _ in $(seq 300); do
  curl -fsS --cacert ca.crt "$url/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS --cacert ca.crt "$url/healthz" >/dev/null
for role in operator:operator reader:read-only; do
  curl -fsS --cacert ca.crt -H "Authorization: Bearer $(cat admin.token)" -X POST \
    "$url/v1/tokens" -d "{\"name\":\"${role%%:*}\",\"role\":\"${role#*:}\"}" |
    jq -r .token > "${role%%:*}.token"
done
