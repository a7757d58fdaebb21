#!/usr/bin/env bash
# Runs inside a kernel-matrix guest (scripts/kernel-vm/run.sh), in the repo:
#   guest-check.sh OUT_DIR RUNS SECONDS
# 1. `apisix-profile doctor --json` (every check, and each BPF program's
#    verified instructions and deepest call-chain stack under every load
#    variant, from this kernel's own verifier) -> OUT_DIR/doctor.json
# 2. RUNS one-shot profiles of the fixture nginx under wrk load, each a fresh
#    profiler process of SECONDS -> OUT_DIR/profile-N.{json,folded,log,exit}
# 3. One off-CPU profile of the fixture's FFI blocking handlers
#    (/block?only=ffi, one connection: fork and exec are too slow here) -> OUT_DIR/offcpu.{json,folded,log,exit}, and the handlers'
#    own measurement of their blocked time since just before it ->
#    OUT_DIR/offcpu-truth.json
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

# The handlers' measurement covers the sampling only: reset when the
# profiler logs that sampling started, read when it logs that it stopped
# (starting the profiler takes ~10 s under TCG).
wrk -t1 -c1 -d$((seconds + 60))s "http://127.0.0.1:$port/block?only=ffi" >/dev/null 2>&1 &
load=$!
sleep 1
node "$cli" --pid "$master" --duration "$seconds" --mode off-cpu --log-format json \
  -o "$out/offcpu.svg" --folded "$out/offcpu.folded" --json "$out/offcpu.json" \
  > "$out/offcpu.log" 2>&1 &
profiler=$!
phase='"msg":"sampling"'
while kill -0 "$profiler" 2>/dev/null; do
  if grep -q "$phase" "$out/offcpu.log"; then
    if [ "$phase" = '"msg":"sampling"' ]; then
      curl -fsS "http://127.0.0.1:$port/block/reset" >/dev/null
      phase='"msg":"sampling stopped"'
    else
      curl -fsS "http://127.0.0.1:$port/block/truth" > "$out/offcpu-truth.json"
      break
    fi
  fi
  sleep 0.05
done
wait "$profiler"
echo $? > "$out/offcpu.exit"
kill "$load" 2>/dev/null; wait "$load" 2>/dev/null
echo "guest-check: off-CPU run exit $(cat "$out/offcpu.exit")"
kill "$master" 2>/dev/null
exit 0
