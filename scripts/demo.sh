#!/usr/bin/env bash
# The demo: starts the bundled fixture app (nginx + ngx_lua on 127.0.0.1),
# loads it with wrk, profiles its worker for ~10 s and writes flame.svg and
# flame.folded in the current directory. Stops nginx however it ends.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(pwd)
port=${DEMO_PORT:-18080}
prefix=$(mktemp -d /tmp/apisix-profile-demo.XXXXXX)
master=""
cleanup() {
  [ -n "$master" ] && kill "$master" 2>/dev/null || true
  for _ in $(seq 1 30); do [ -n "$master" ] && kill -0 "$master" 2>/dev/null && sleep 0.1 || break; done
  rm -rf "$prefix"
}
trap cleanup EXIT

master=$(bash "$root/fixtures/nginx/start.sh" "$prefix" "$port" jit-on 1)
echo "demo: fixture nginx master $master on 127.0.0.1:$port"
wrk -t1 -c4 -d13s "http://127.0.0.1:$port/work" >/dev/null &
wrk -t1 -c1 -d13s "http://127.0.0.1:$port/hash" >/dev/null &
sleep 1
"$root/bin/apisix-profile.js" --pid "$master" --duration 10 --frequency 99 \
  --output "$out/flame.svg" --folded "$out/flame.folded"
wait
echo "demo: wrote $out/flame.svg and $out/flame.folded"
