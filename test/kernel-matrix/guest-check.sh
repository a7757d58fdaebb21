#!/usr/bin/env bash
# Runs inside a kernel-matrix guest (scripts/kernel-vm/run.sh), in the repo:
#   guest-check.sh OUT_DIR RUNS SECONDS
# 1. `apisix-profile doctor --json` (every check, and each BPF program's
#    verified instructions under every load variant) -> OUT_DIR/doctor.json
# 2. RUNS one-shot profiles of the fixture nginx under wrk load, each a fresh
#    profiler process of SECONDS -> OUT_DIR/profile-N.{json,folded,log,exit}
# kernel-matrix.test.ts reads these on the host. Exits 0 once all ran, with
# whatever each one gave: judging is the test's job.
set -uo pipefail
out=$1 runs=${2:-3} seconds=${3:-5}
root=$(cd "$(dirname "$0")/../.." && pwd)
cli="$root/bin/apisix-profile.js"
cd "$root"

node "$cli" doctor --json > "$out/doctor.json" 2> "$out/doctor.log"
echo $? > "$out/doctor.exit"

prefix=$(mktemp -d /run/fixture.XXXXXX)
port=18181
master=$(bash fixtures/nginx/start.sh "$prefix" "$port" jit-on 1) || { echo "guest-check: the fixture nginx did not start"; cat "$prefix/logs/error.log"; exit 1; }
echo "guest-check: fixture master $master"
for i in $(seq 1 "$runs"); do
  # The profiler takes ~10 s to start under TCG: the load must outlast it
  # (it is stopped when the profile ends).
  wrk -t1 -c4 -d$((seconds + 60))s "http://127.0.0.1:$port/work" >/dev/null 2>&1 &
  load=$!
  sleep 1
  node "$cli" --pid "$master" --duration "$seconds" --frequency 499 --log-format json \
    -o "$out/profile-$i.svg" --folded "$out/profile-$i.folded" --json "$out/profile-$i.json" \
    > "$out/profile-$i.log" 2>&1
  echo $? > "$out/profile-$i.exit"
  kill "$load" 2>/dev/null; wait "$load" 2>/dev/null
  echo "guest-check: run $i exit $(cat "$out/profile-$i.exit")"
done
kill "$master" 2>/dev/null
exit 0
