#!/usr/bin/env bash
# Generate a LuaJIT struct-offset table from a Debian source package or from a
# source tarball.
#
#   luajit-offsets/generate.sh SRC_PACKAGE MODE [VERSION]
#   luajit-offsets/generate.sh --source FILE [--name PKG-VERSION] MODE
#
#   SRC_PACKAGE  luajit2 (OpenResty's branch) or luajit (upstream)
#   MODE         gc64 or nogc64
#   VERSION      optional Debian version to fetch (default: the candidate)
#   FILE         a .tar.gz/.tgz/.tar.xz of a LuaJIT tree with one top folder
#                (a `git archive` of a tag or branch); its name minus the
#                extension is PKG-VERSION (luajit2-2.1-20240314) unless --name
#                gives one. When the README.md next to FILE lists it, its
#                sha256 must match and the repository, ref and commit listed
#                there go into the table's "source"; an unlisted tarball is
#                used as is and its sha256 is reported and recorded.
#
# Steps (each cached under ${APISIX_PROFILE_CACHE:-/var/cache/apisix-profile}):
#   1. src/    Debian: `apt-get source` with a private apt state (deb-src entry
#              made from the main entry of /etc/apt/sources.list.d/debian.sources,
#              lists and caches under the cache dir): the system's apt
#              configuration, lists and caches are not touched. apt checks the
#              signed Release file and the .dsc/tarball hashes as usual.
#              Tarball: unpacked into src/PKG-VERSION/ (redone when its sha256
#              changes).
#   2. build/  a per-mode copy of the tree, built with `make -j2`; this
#              generates src/lj_ffdef.h and a libluajit usable with
#              LD_LIBRARY_PATH (built with PREFIX/MULTILIB like Debian's).
#   3. offsets.c compiled against that tree's headers with the same XCFLAGS,
#              run, and combined with the fast-function names parsed from
#              lj_ffdef.h (ffnames.mjs) into tables/<pkg>-<version>-<mode>.json
set -euo pipefail

usage() {
  echo "usage: $0 luajit2|luajit gc64|nogc64 [DEBIAN_VERSION]" >&2
  echo "       $0 --source FILE [--name PKG-VERSION] gc64|nogc64" >&2
  exit 2
}
TARBALL=
NAME=
while [ $# -gt 0 ]; do
  case "$1" in
    --source) [ $# -ge 2 ] || usage; TARBALL=$2; shift 2 ;;
    --name) [ $# -ge 2 ] || usage; NAME=$2; shift 2 ;;
    *) break ;;
  esac
done
if [ -n "$TARBALL" ]; then
  [ $# -eq 1 ] || usage
  MODE=$1
else
  [ -z "$NAME" ] || usage
  [ $# -ge 2 ] && [ $# -le 3 ] || usage
  PKG=$1
  MODE=$2
  WANT_VERSION=${3:-}
  case "$PKG" in luajit2|luajit) ;; *) usage ;; esac
fi
case "$MODE" in gc64|nogc64) ;; *) usage ;; esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${APISIX_PROFILE_CACHE:-/var/cache/apisix-profile}
SRC_CACHE=$CACHE/src
BUILD_CACHE=$CACHE/build
APT_STATE=$CACHE/apt
JOBS=${JOBS:-2}

log() { echo "generate.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# --- 1. source ---------------------------------------------------------------
# Prints the .dsc of PKG in the cache (highest version if several).
find_dsc() {
  local f best="" bestv="" v
  shopt -s nullglob
  for f in "$SRC_CACHE/${PKG}"_*.dsc; do
    v=$(sed -n 's/^Version: *//p' "$f" | head -n1)
    if [ -n "$WANT_VERSION" ] && [ "$v" != "$WANT_VERSION" ]; then continue; fi
    if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$bestv"; then
      best=$f; bestv=$v
    fi
  done
  shopt -u nullglob
  printf '%s' "$best"
}

upstream_of() {  # strip epoch and Debian revision
  local v=${1#*:}
  printf '%s' "${v%-*}"
}

# The deb-src entry: the first stanza of debian.sources (the main archive),
# with Types changed to deb-src and comments dropped.
write_deb_src() {
  local main=/etc/apt/sources.list.d/debian.sources
  [ -r "$main" ] || die "$main not found: cannot derive a deb-src entry"
  awk 'BEGIN { s = 0 }
       /^[[:space:]]*$/ { if (s) exit; next }
       /^[[:space:]]*#/ { next }
       { s = 1
         if ($1 == "Types:") print "Types: deb-src"; else print }' \
    "$main" >"$1"
  grep -q '^URIs:' "$1" && grep -q '^Signed-By:' "$1" \
    || die "could not read URIs/Signed-By from $main"
}

fetch_source() {
  if ! command -v dpkg-source >/dev/null 2>&1; then
    log "installing dpkg-dev (for dpkg-source)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dpkg-dev >&2
  fi
  mkdir -p "$SRC_CACHE" "$APT_STATE/lists/partial" "$APT_STATE/cache/archives/partial"
  write_deb_src "$APT_STATE/deb-src.sources"
  local apt_opts=(
    -o "Dir::Etc::SourceList=$APT_STATE/deb-src.sources"
    -o "Dir::Etc::SourceParts=$APT_STATE/no-parts"
    -o "Dir::State::Lists=$APT_STATE/lists"
    -o "Dir::Cache=$APT_STATE/cache"
  )
  mkdir -p "$APT_STATE/no-parts"
  log "apt-get update (private deb-src lists in $APT_STATE)"
  apt-get "${apt_opts[@]}" update >&2
  local spec=$PKG
  [ -n "$WANT_VERSION" ] && spec="$PKG=$WANT_VERSION"
  log "apt-get source $spec"
  (cd "$SRC_CACHE" && apt-get "${apt_opts[@]}" source "$spec" >&2)
}

debian_source() {
  DSC=$(find_dsc)
  if [ -n "$DSC" ]; then
    DEB_VERSION=$(sed -n 's/^Version: *//p' "$DSC" | head -n1)
    UPSTREAM=$(upstream_of "$DEB_VERSION")
  fi
  if [ -z "$DSC" ] || [ ! -f "$SRC_CACHE/$PKG-$UPSTREAM/src/lj_obj.h" ]; then
    fetch_source
    DSC=$(find_dsc)
    [ -n "$DSC" ] || die "apt-get source did not leave a ${PKG}_*.dsc in $SRC_CACHE"
    DEB_VERSION=$(sed -n 's/^Version: *//p' "$DSC" | head -n1)
    UPSTREAM=$(upstream_of "$DEB_VERSION")
  else
    log "using cached source $SRC_CACHE/$PKG-$UPSTREAM"
  fi
  SRCDIR=$SRC_CACHE/$PKG-$UPSTREAM
  [ -f "$SRCDIR/src/lj_obj.h" ] || die "unpacked source not found in $SRCDIR"
  # Same name as a tarball unpacked by --source: not the Debian tree.
  [ ! -f "$SRCDIR/.apisix-profile-source" ] \
    || die "$SRCDIR holds a tarball unpacked by --source, not Debian's $PKG: remove it and run again"
  DSC_SHA256=$(sha256sum "$DSC" | cut -d' ' -f1)
  SOURCE="Debian source package $PKG $DEB_VERSION (dsc sha256 $DSC_SHA256)"
  SOURCE_STAMP="dsc-sha256=$DSC_SHA256"
}

# Reads the README.md next to the tarball: a Markdown table whose columns
# include file, repository, ref, commit and sha256. Prints
# "repository|ref|commit|sha256" for FILE's row, or nothing.
listed_release() {
  local readme file=$1
  readme=$(dirname "$file")/README.md
  [ -r "$readme" ] || return 0
  awk -F'|' -v want="$(basename "$file")" '
    function trim(s) { gsub(/^[ \t`]+|[ \t`]+$/, "", s); return s }
    /^\|/ && !cols { for (i = 2; i < NF; i++) col[trim($i)] = i; cols = ("file" in col) && ("sha256" in col); next }
    /^\|/ && cols && trim($(col["file"])) == want {
      print trim($(col["repository"])) "|" trim($(col["ref"])) "|" trim($(col["commit"])) "|" trim($(col["sha256"])); exit
    }' "$readme"
}

tarball_source() {
  [ -f "$TARBALL" ] || die "$TARBALL: no such file"
  local base listed repo ref commit want_sha
  base=$(basename "$TARBALL")
  if [ -z "$NAME" ]; then
    NAME=${base%.tar.gz}; NAME=${NAME%.tgz}; NAME=${NAME%.tar.xz}
  fi
  # PKG-VERSION: the package is everything before the first "-<digit>".
  [[ "$NAME" =~ ^([A-Za-z][A-Za-z0-9_.]*)-([0-9][A-Za-z0-9.+~_-]*)$ ]] \
    || die "cannot read PKG-VERSION from '$NAME': pass --name, e.g. --name luajit-2.1-20260819"
  PKG=${BASH_REMATCH[1]}
  UPSTREAM=${BASH_REMATCH[2]}
  TAR_SHA256=$(sha256sum "$TARBALL" | cut -d' ' -f1)
  listed=$(listed_release "$TARBALL")
  if [ -n "$listed" ]; then
    IFS='|' read -r repo ref commit want_sha <<<"$listed"
    [ "$TAR_SHA256" = "$want_sha" ] \
      || die "$base: sha256 $TAR_SHA256 differs from $want_sha listed in $(dirname "$TARBALL")/README.md"
    log "$base: sha256 $TAR_SHA256 matches $(dirname "$TARBALL")/README.md ($repo $ref, commit $commit)"
    SOURCE="$repo $ref, commit $commit ($base sha256 $TAR_SHA256)"
  else
    log "$base: not listed in $(dirname "$TARBALL")/README.md; using it as is, sha256 $TAR_SHA256"
    SOURCE="$base (sha256 $TAR_SHA256, not listed)"
  fi
  SOURCE_STAMP="tarball-sha256=$TAR_SHA256"
  SRCDIR=$SRC_CACHE/$PKG-$UPSTREAM
  if [ -f "$SRCDIR/.apisix-profile-source" ] && [ "$(cat "$SRCDIR/.apisix-profile-source")" = "$SOURCE_STAMP" ]; then
    log "using cached source $SRCDIR"
  else
    log "unpacking $base into $SRCDIR"
    rm -rf "$SRCDIR" "$SRCDIR.tmp"
    mkdir -p "$SRCDIR.tmp"
    tar -xf "$TARBALL" -C "$SRCDIR.tmp" --strip-components=1
    [ -f "$SRCDIR.tmp/src/lj_obj.h" ] || { rm -rf "$SRCDIR.tmp"; die "$base has no <top>/src/lj_obj.h: not a LuaJIT tree"; }
    printf '%s' "$SOURCE_STAMP" >"$SRCDIR.tmp/.apisix-profile-source"
    mv "$SRCDIR.tmp" "$SRCDIR"
  fi
}

if [ -n "$TARBALL" ]; then
  tarball_source
else
  debian_source
fi

# --- 2. build ----------------------------------------------------------------

# GC64 switch: LuaJIT 2.1 trees are GC64 by default on x86-64 when lj_arch.h
# offers LUAJIT_DISABLE_GC64; older 2.1 trees (opt-in GC64) offer
# LUAJIT_ENABLE_GC64 instead.
if [ "$MODE" = nogc64 ]; then
  grep -q LUAJIT_DISABLE_GC64 "$SRCDIR/src/lj_arch.h" \
    || die "$PKG $UPSTREAM has no LUAJIT_DISABLE_GC64 switch"
  XCFLAGS=-DLUAJIT_DISABLE_GC64
elif grep -q LUAJIT_DISABLE_GC64 "$SRCDIR/src/lj_arch.h"; then
  XCFLAGS=
elif grep -q LUAJIT_ENABLE_GC64 "$SRCDIR/src/lj_arch.h"; then
  XCFLAGS=-DLUAJIT_ENABLE_GC64
else
  die "cannot tell how to select GC64 in $SRCDIR/src/lj_arch.h"
fi

MULTIARCH=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
BUILDDIR=$BUILD_CACHE/$PKG-$UPSTREAM-$MODE
STAMP=$BUILDDIR/.apisix-profile-built
MAKE_ARGS=(-j"$JOBS" CCDEBUG=-g "XCFLAGS=$XCFLAGS" PREFIX=/usr "MULTILIB=lib/$MULTIARCH")
STAMP_TEXT="$SOURCE_STAMP make ${MAKE_ARGS[*]:1}"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_TEXT" ] \
   && [ -f "$BUILDDIR/src/lj_ffdef.h" ]; then
  log "using cached build $BUILDDIR"
else
  log "building $PKG $UPSTREAM ($MODE) in $BUILDDIR: make ${MAKE_ARGS[*]}"
  rm -rf "$BUILDDIR"
  mkdir -p "$BUILD_CACHE"
  cp -a "$SRCDIR" "$BUILDDIR"
  start=$(date +%s)
  make -C "$BUILDDIR" "${MAKE_ARGS[@]}" >"$BUILDDIR/build.log" 2>&1 \
    || { tail -n 30 "$BUILDDIR/build.log" >&2; die "build failed (log: $BUILDDIR/build.log)"; }
  log "build took $(( $(date +%s) - start )) s"
  printf '%s' "$STAMP_TEXT" >"$STAMP"
fi

# Sanity: the built interpreter agrees with the requested mode.
want_abi=$([ "$MODE" = gc64 ] && echo true || echo false)
got_abi=$("$BUILDDIR/src/luajit" -e "io.write(tostring(require('ffi').abi('gc64')))")
[ "$got_abi" = "$want_abi" ] || die "built luajit reports ffi.abi('gc64') = $got_abi, wanted $want_abi"
# The version string the library carries (LUAJIT_VERSION, also jit.version).
# Rolling-release trees (src/luajit_rolling.h) append the release number the
# build reads from .git or, in a `git archive` tarball, from .relver (filled
# in by export-subst with the commit time); without either it would be empty.
LUAJIT_VERSION=$("$BUILDDIR/src/luajit" -e "io.write(jit.version)")
if [ -f "$BUILDDIR/src/luajit_rolling.h" ] && ! [[ "$LUAJIT_VERSION" =~ [0-9]$ ]]; then
  die "built luajit says '$LUAJIT_VERSION': the rolling release number is missing (no .git and no filled-in .relver in the source)"
fi
log "built library says: $LUAJIT_VERSION"

# --- 3. offsets --------------------------------------------------------------

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# Same defines as the library build (TARGET_XCFLAGS in src/Makefile for
# Linux/x86-64 plus ours); none of the other defaults change struct layout.
CFLAGS=(-I"$BUILDDIR/src" -D_FILE_OFFSET_BITS=64 -D_LARGEFILE_SOURCE -U_FORTIFY_SOURCE)
# shellcheck disable=SC2206
[ -z "$XCFLAGS" ] || CFLAGS+=($XCFLAGS)
# Fields some releases lack (offsets.c prints -1 for them): 1 when this
# tree's headers declare TYPE.FIELD.
has_field() {
  printf '#include <stddef.h>\n#include "lj_obj.h"\n#include "lj_jit.h"\nint probe = (int)offsetof(%s, %s);\n' "$1" "$2" \
    | gcc -fsyntax-only -x c "${CFLAGS[@]}" - 2>/dev/null && echo 1 || echo 0
}
# A field every release has must probe as present, or the probe itself is broken.
[ "$(has_field SnapShot mapofs)" = 1 ] || die "cannot compile a probe against $BUILDDIR/src headers"
HAVE_SNAP_MCOFS=$(has_field SnapShot mcofs)
[ "$HAVE_SNAP_MCOFS" = 1 ] || log "this tree's SnapShot has no mcofs: snap_mcofs = -1"
HAVE_L_EXDATA=$(has_field lua_State exdata)
[ "$HAVE_L_EXDATA" = 1 ] || log "this tree's lua_State has no exdata (not OpenResty's branch): L_exdata = -1"
gcc -O0 -o "$TMP/offsets" "${CFLAGS[@]}" -DOFFSETS_HAVE_SNAP_MCOFS="$HAVE_SNAP_MCOFS" -DOFFSETS_HAVE_L_EXDATA="$HAVE_L_EXDATA" "$HERE/offsets.c"
"$TMP/offsets" >"$TMP/offsets.json"
"$TMP/offsets" bytecodes >"$TMP/bytecodes.json"
node "$HERE/ffnames.mjs" "$BUILDDIR/src/lj_ffdef.h" >"$TMP/ff.json"

# Cross-check against the names LuaJIT's own build wrote to jit/vmdef.lua
# (ffnames = { [0]="Lua", "C", ... }): same names, same ids.
node -e '
  const fs = require("fs");
  const [ffPath, vmdefPath] = process.argv.slice(1);
  const ours = JSON.parse(fs.readFileSync(ffPath, "utf8"));
  const block = /^ffnames = \{([^}]*)\}/m.exec(fs.readFileSync(vmdefPath, "utf8"));
  if (!block) { console.error("no ffnames in " + vmdefPath); process.exit(1); }
  const theirs = [...block[1].matchAll(/"([^"]*)"/g)].map((m) => m[1]);
  if (theirs[0] !== "Lua" || theirs[1] !== "C") { console.error("unexpected vmdef ffnames start"); process.exit(1); }
  const want = theirs.slice(2);
  const bad = [];
  for (let i = 0; i < Math.max(want.length, ours.length); i++)
    if (want[i] !== ours[i]) bad.push(`ffid ${i + 2}: ours ${ours[i]} vmdef ${want[i]}`);
  if (bad.length) { console.error("fast-function names differ from jit/vmdef.lua:\n" + bad.join("\n")); process.exit(1); }
' "$TMP/ff.json" "$BUILDDIR/src/jit/vmdef.lua" || die "fast-function name check failed"

# OUT_DIR lets a test regenerate a table elsewhere and compare it.
OUT_DIR=${OUT_DIR:-$HERE/tables}
mkdir -p "$OUT_DIR"
OUT=$OUT_DIR/$PKG-$UPSTREAM-$MODE.json
PKG="$PKG" UPSTREAM="$UPSTREAM" MODE="$MODE" \
SOURCE="$SOURCE" LUAJIT_VERSION="$LUAJIT_VERSION" \
node -e '
  const fs = require("fs");
  const [offsetsPath, ffPath, bcPath, outPath] = process.argv.slice(1);
  const table = {
    package: process.env.PKG,
    version: process.env.UPSTREAM,
    mode: process.env.MODE,
    source: process.env.SOURCE,
    luajitVersion: process.env.LUAJIT_VERSION,
    generator: "luajit-offsets/generate.sh",
    offsets: JSON.parse(fs.readFileSync(offsetsPath, "utf8")),
    fastFunctions: JSON.parse(fs.readFileSync(ffPath, "utf8")),
    bytecodes: JSON.parse(fs.readFileSync(bcPath, "utf8")),
  };
  // One bytecode per line keeps the file readable.
  const text = JSON.stringify(table, null, 2).replace(/\[\s+("[^"]*"),\s+("[^"]*"),\s+("[^"]*")\s+\]/g, "[$1, $2, $3]");
  fs.writeFileSync(outPath, text + "\n");
' "$TMP/offsets.json" "$TMP/ff.json" "$TMP/bytecodes.json" "$OUT"
log "wrote $OUT"
