#!/usr/bin/env bash
# Fetch the pinned libbpf source from Debian and build a static, PIC libbpf.a
# for the native addon (Debian's libbpf.a is not PIC: it cannot link into a .node file).
#
#   vendor/libbpf/            Debian source package (.dsc, tarballs, unpacked tree)
#   build/libbpf/lib/libbpf.a static library, built with -fPIC
#   build/libbpf/include/     bpf/*.h and libbpf's copy of the linux/ uapi headers
#   build/libbpf/.stamp       what was built; when it matches, the script does nothing
#
# The source comes from apt: the signed Sources index vouches for the .dsc,
# dpkg-source checks the tarballs against the .dsc, and the .dsc's sha256 is
# pinned below. apt runs against a private sources list, lists directory and
# cache under a temporary directory, so the system's apt state is not touched.
set -euo pipefail

readonly SRC_PACKAGE=libbpf
readonly SRC_VERSION=1.1.2-0+deb12u1     # binary packages carry the epoch 1:
readonly UPSTREAM_VERSION=1.1.2
readonly DSC_SHA256=96f81dad2d5f1505ac8c3630249c77f7fcb9ab2f429c4386b2eee2149b7a8c4b
readonly LIB_CFLAGS='-O2 -fPIC'

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT
readonly VENDOR="$ROOT/vendor/libbpf"
readonly SRC_TREE="$VENDOR/$SRC_PACKAGE-$UPSTREAM_VERSION"
readonly DSC="$VENDOR/${SRC_PACKAGE}_${SRC_VERSION}.dsc"
readonly OUT="$ROOT/build/libbpf"
readonly STAMP="$OUT/.stamp"
readonly STAMP_TEXT="$SRC_PACKAGE $SRC_VERSION dsc-sha256=$DSC_SHA256 cflags=$LIB_CFLAGS"

TMP=""
LOG=""
cleanup() { [[ -n "$TMP" ]] && rm -rf "$TMP"; return 0; }
trap cleanup EXIT

die() {
  echo "build-libbpf: $*${LOG:+ (log: $LOG)}" >&2
  exit 1
}

# Warm path: already built from the pinned source with the same flags.
if [[ -f "$OUT/lib/libbpf.a" && -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_TEXT" ]]; then
  exit 0
fi

for tool in apt-get dpkg-source make cc sha256sum; do
  command -v "$tool" >/dev/null || die "'$tool' not found (apt-get install dpkg-dev build-essential)"
done
[[ -r /usr/include/gelf.h ]] || die "libelf headers missing (apt-get install libelf-dev)"
[[ -r /usr/include/zlib.h ]] || die "zlib headers missing (apt-get install zlib1g-dev)"

mkdir -p "$OUT"
LOG="$OUT/build.log"
: >"$LOG"

dsc_ok() { [[ -f "$DSC" ]] && echo "$DSC_SHA256  $DSC" | sha256sum --check --status 2>/dev/null; }

fetch_source() {
  [[ $EUID -eq 0 ]] || die "fetching the libbpf source needs root for apt-get (or put it in $VENDOR yourself)"
  TMP=$(mktemp -d /tmp/apisix-profile-libbpf.XXXXXX)
  # A deb-src twin of the main Debian entry, used only by the apt calls below.
  local main=/etc/apt/sources.list.d/debian.sources
  [[ -r "$main" ]] || die "$main not found: cannot derive a deb-src entry"
  awk 'BEGIN { RS = ""; ORS = "\n\n" } NR == 1 { sub(/^Types:[^\n]*/, "Types: deb-src"); print; exit }' \
    "$main" >"$TMP/apisix-profile-libbpf-src.sources"
  grep -q '^Types: deb-src$' "$TMP/apisix-profile-libbpf-src.sources" || die "could not parse $main"
  mkdir -p "$TMP/lists/partial" "$TMP/cache/archives/partial"
  local apt_opts=(
    -q -o "Dir::Etc::SourceList=$TMP/apisix-profile-libbpf-src.sources"
    -o "Dir::Etc::SourceParts=$TMP/no-parts"
    -o "Dir::State::Lists=$TMP/lists"
    -o "Dir::Cache=$TMP/cache"
    -o "APT::Sandbox::User=root"
  )
  apt-get "${apt_opts[@]}" update >>"$LOG" 2>&1 || die "apt-get update (deb-src) failed"

  rm -rf "$VENDOR"
  mkdir -p "$VENDOR"
  (cd "$VENDOR" && apt-get "${apt_opts[@]}" --download-only source "$SRC_PACKAGE=$SRC_VERSION") >>"$LOG" 2>&1 ||
    die "apt-get source $SRC_PACKAGE=$SRC_VERSION failed"
  dsc_ok || die "sha256 of $(basename "$DSC") does not match the pinned $DSC_SHA256"
  # dpkg-source verifies every file listed in the .dsc against its checksums.
  (cd "$VENDOR" && dpkg-source --no-copy -x "$(basename "$DSC")" "$(basename "$SRC_TREE")") >>"$LOG" 2>&1 ||
    die "dpkg-source -x $(basename "$DSC") failed"
  echo "$STAMP_TEXT" >"$VENDOR/.fetched"
}

if ! { dsc_ok && [[ -f "$VENDOR/.fetched" && "$(cat "$VENDOR/.fetched")" == "$STAMP_TEXT" && -f "$SRC_TREE/src/Makefile" ]]; }; then
  fetch_source
fi

# Build. Install into build/libbpf with an empty prefix: lib/, include/.
rm -rf "$OUT/obj" "$OUT/lib" "$OUT/include" "$STAMP"
mkdir -p "$OUT/obj"   # the Makefile writes libbpf.pc there before creating it
make_args=(
  -C "$SRC_TREE/src" -j"$(nproc)"
  BUILD_STATIC_ONLY=1 OBJDIR="$OUT/obj" DESTDIR="$OUT"
  PREFIX= LIBDIR=/lib INCLUDEDIR=/include UAPIDIR=/include
  CFLAGS="$LIB_CFLAGS"
)
make "${make_args[@]}" install install_uapi_headers >>"$LOG" 2>&1 || die "make libbpf failed"
[[ -f "$OUT/lib/libbpf.a" && -f "$OUT/include/bpf/libbpf.h" ]] || die "make libbpf did not produce lib/libbpf.a"
rm -rf "$OUT/obj"
echo "$STAMP_TEXT" >"$STAMP"
