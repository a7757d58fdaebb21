#!/usr/bin/env bash
# Builds every LuaJIT that has a committed offset table (one build per
# luajit-offsets/tables/*.json: Debian's two source packages and the release
# tarballs, each GC64 and non-GC64) with luajit-offsets/generate.sh, which
# caches sources and builds under ${APISIX_PROFILE_CACHE:-/var/cache/apisix-profile}
# (a second run takes seconds). Each build, build/<package>-<version>-<mode>/,
# gets a lib/ directory holding libluajit-5.1.so.2 for LD_LIBRARY_PATH.
#
# Tarballs are read from the folder scripts/luajit-src-dir.sh names
# ($APISIX_PROFILE_LUAJIT_SRC, else the workspace's shared/luajit-src)
# (generate.sh checks each against the sha256 in that folder's README.md).
# Every table is regenerated into a temp dir and must equal the committed one:
# a build whose layout differs from its table fails here, not in a profile.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${APISIX_PROFILE_CACHE:-/var/cache/apisix-profile}
src_dir=$(bash "$root/scripts/luajit-src-dir.sh")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
start=$(date +%s)

# One line per table: file name, package, version, mode, "debian" or "tarball".
node -e '
  const fs = require("fs"), path = require("path");
  const dir = process.argv[1];
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith(".json")).sort()) {
    const t = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
    const kind = t.source.startsWith("Debian source package ") ? "debian" : "tarball";
    console.log([f, t.package, t.version, t.mode, kind].join(" "));
  }
' "$root/luajit-offsets/tables" >"$out/list"

count=0
while read -r file pkg version mode kind; do
  if [ "$kind" = debian ]; then
    args=("$pkg" "$mode")
  else
    tarball=$src_dir/$pkg-$version.tar.gz
    [ -f "$tarball" ] || { echo "build-luajit-variants: $tarball not found (set APISIX_PROFILE_LUAJIT_SRC to the folder holding the LuaJIT source tarballs)" >&2; exit 1; }
    args=(--source "$tarball" "$mode")
  fi
  if ! OUT_DIR=$out/tables bash "$root/luajit-offsets/generate.sh" "${args[@]}" >"$out/log" 2>&1; then
    cat "$out/log" >&2
    echo "build-luajit-variants: generate.sh ${args[*]} failed" >&2
    exit 1
  fi
  grep -E 'build took' "$out/log" | sed "s|^generate.sh: |$pkg-$version-$mode: |" || true
  cmp -s "$out/tables/$file" "$root/luajit-offsets/tables/$file" || {
    diff "$root/luajit-offsets/tables/$file" "$out/tables/$file" | head -n 20 >&2
    echo "build-luajit-variants: the build of $file does not match the committed table" >&2
    exit 1
  }
  dir=$cache/build/$pkg-$version-$mode
  [ -f "$dir/src/libluajit.so" ] || { echo "build-luajit-variants: $dir has no libluajit.so" >&2; exit 1; }
  mkdir -p "$dir/lib"
  ln -sf ../src/libluajit.so "$dir/lib/libluajit-5.1.so.2"
  count=$((count + 1))
done <"$out/list"
echo "build-luajit-variants: $count LuaJIT builds ready in $cache/build ($(( $(date +%s) - start )) s)"
