#!/usr/bin/env bash
# Prints the folder holding the LuaJIT release tarballs (the inputs
# luajit-offsets/generate.sh --source builds from; never copied into the
# repository): $APISIX_PROFILE_LUAJIT_SRC when set, else the workspace's
# shared/luajit-src next to the clone, else the workspace's fixed location,
# so a CI clone made anywhere (e.g. under /tmp) still finds them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${APISIX_PROFILE_LUAJIT_SRC:-}" ]; then
  printf '%s\n' "$APISIX_PROFILE_LUAJIT_SRC"
  exit 0
fi
for dir in "$root/../shared/luajit-src" /work/shared/luajit-src; do
  if [ -f "$dir/README.md" ]; then
    (cd "$dir" && pwd)
    exit 0
  fi
done
echo "luajit-src-dir: no LuaJIT source tarballs in $root/../shared/luajit-src or /work/shared/luajit-src: set APISIX_PROFILE_LUAJIT_SRC to the folder holding them" >&2
exit 1
