#!/usr/bin/env bash
# Builds the LuaJIT variants the tests profile (OpenResty's luajit2 and
# upstream luajit from Debian's source packages, each GC64 and non-GC64)
# with luajit-offsets/generate.sh, which caches source and builds under
# ${APISIX_PROFILE_CACHE:-/var/cache/apisix-profile}. Each build gets a lib/
# directory holding libluajit-5.1.so.2 for LD_LIBRARY_PATH. The tables it
# regenerates go to a temp dir; test/integration/offsets-regenerate.test.ts
# compares one with the committed table.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${APISIX_PROFILE_CACHE:-/var/cache/apisix-profile}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for pkg in luajit2 luajit; do
  for mode in gc64 nogc64; do
    OUT_DIR=$out bash "$root/luajit-offsets/generate.sh" "$pkg" "$mode" 2>&1 | grep -E 'build took|error' || true
  done
done
for dir in "$cache"/build/*-gc64 "$cache"/build/*-nogc64; do
  [ -f "$dir/src/libluajit.so" ] || { echo "build-luajit-variants: $dir has no libluajit.so" >&2; exit 1; }
  mkdir -p "$dir/lib"
  ln -sf ../src/libluajit.so "$dir/lib/libluajit-5.1.so.2"
done
