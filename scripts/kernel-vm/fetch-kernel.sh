#!/usr/bin/env bash
# fetch-kernel.sh LINE — fetch the newest Debian kernel of LINE (6.1 or 6.12)
# and build a tiny busybox initramfs that can mount the host's / over 9p.
#
# Result (cached; a second call only prints the directory):
#   ${APISIX_PROFILE_CACHE:-/var/cache/apisix-profile}/kernels/<debian-version>/
#     vmlinuz  initramfs.cpio.gz (busybox + modules)  release (uname -r)  config
# The last line on stdout is that directory; progress goes to stderr.
set -euo pipefail

die() { echo "fetch-kernel.sh: $*" >&2; exit 1; }
log() { echo "fetch-kernel.sh: $*" >&2; }

[[ $# -eq 1 ]] || die "usage: fetch-kernel.sh 6.1|6.12"
case "$1" in
  # The generic flavour: the cloud flavour has no 9p.
  6.1)  pattern='^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' ;;
  6.12) pattern='^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$' ;;
  *)    die "unknown kernel line '$1': use 6.1 or 6.12" ;;
esac
need_root() { [[ $(id -u) -eq 0 ]] || die "needs root to $1; run it with sudo"; }

find_package() {
  apt-cache search --names-only "$pattern" 2>/dev/null | awk '{print $1}' | sort -V | tail -n 1
}

# Refresh the package lists when they are missing or older than a day, so
# "newest" means newest in the archive, not in a stale list.
if [[ -z $(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mtime -1 2>/dev/null | head -n 1) ]]; then
  log "apt lists missing or older than a day: apt-get update"
  need_root "run apt-get update"
  apt-get update -qq >&2 || log "apt-get update failed; using the lists there are"
fi
pkg=$(find_package)
[[ -n $pkg ]] || die "no package matches $pattern; run 'apt-get update' and check that bookworm and bookworm-security are in the apt sources"
version=$(apt-cache show --no-all-versions "$pkg" | awk '/^Version:/ {print $2; exit}')
[[ -n $version ]] || die "apt-cache show $pkg gave no version; run 'apt-get update'"

cache="${APISIX_PROFILE_CACHE:-/var/cache/apisix-profile}/kernels"
dest="$cache/$version"
cached() { [[ -s $dest/vmlinuz && -s $dest/initramfs.cpio.gz && -s $dest/release ]]; }
if cached; then echo "$dest"; exit 0; fi

need_root "download and unpack kernels"
mkdir -p "$cache"
# Parallel CI jobs may fetch the same kernel: one builds, the others wait.
exec 9>"$cache/.lock"
flock 9
if cached; then echo "$dest"; exit 0; fi

# The initramfs has no libc, so its busybox must be the static one.
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; then
  log "installing busybox-static"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >&2 \
    || die "apt-get install busybox-static failed; install it by hand"
fi
command -v xz >/dev/null || die "xz is missing; apt-get install xz-utils"

work=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

log "downloading $pkg $version"
# Sandbox user root: _apt cannot write to our mktemp directory.
(cd "$work" && apt-get download -qq -o APT::Sandbox::User=root "$pkg=$version" >&2) \
  || die "apt-get download $pkg failed; check the network and run 'apt-get update'"
log "extracting"
dpkg-deb -x "$work"/*.deb "$work/tree"

release=$(basename "$(ls -d "$work"/tree/lib/modules/*/)")
moddir="$work/tree/lib/modules/$release"
[[ -f $work/tree/boot/vmlinuz-$release ]] || die "$pkg has no boot/vmlinuz-$release; unexpected package layout"

# The package ships no modules.dep: map module name -> file ourselves.
declare -A modfile=()
while IFS= read -r f; do
  name=${f##*/}; name=${name%.xz}; name=${name%.ko}; name=${name//-/_}
  modfile[$name]=$f
done < <(find "$moddir/kernel" -name '*.ko' -o -name '*.ko.xz')

is_builtin() { grep -Eq "/${1//_/[_-]}\.ko$" "$moddir/modules.builtin"; }

# Unpack one module into the initramfs (busybox insmod cannot read .ko.xz).
mkdir -p "$work/initramfs/modules" "$work/initramfs/bin"
declare -A done_mod=()
order=()
add_module() {
  local name=${1//-/_} f deps d
  [[ -z ${done_mod[$name]:-} ]] || return 0
  done_mod[$name]=1
  f=${modfile[$name]:-}
  if [[ -z $f ]]; then
    is_builtin "$name" && return 0
    die "module $name is neither in $pkg nor built in; the kernel-vm scripts need an update"
  fi
  case "$f" in
    *.xz) xz -dc "$f" > "$work/initramfs/modules/$name.ko" ;;
    *)    cp "$f" "$work/initramfs/modules/$name.ko" ;;
  esac
  # .modinfo is a list of NUL-terminated key=value strings.
  deps=$(tr '\0' '\n' < "$work/initramfs/modules/$name.ko" | grep -a -m1 '^depends=' || true)
  deps=${deps#depends=}
  for d in ${deps//,/ }; do add_module "$d"; done
  order+=("$name")  # after its dependencies: the load order
}
# What the root needs: virtio-pci transport, 9p over virtio, overlayfs.
# Dependencies (virtio_ring, netfs, fscache, ...) come from depends=.
for m in virtio_pci 9pnet_virtio 9p overlay; do add_module "$m"; done
printf '%s\n' "${order[@]}" > "$work/initramfs/modules/order"
log "modules: ${order[*]}"

cp /bin/busybox "$work/initramfs/bin/busybox"
# No /init here: run.sh appends the current one at boot, so editing init
# never needs a refetch.
(cd "$work/initramfs" && find . | busybox cpio -o -H newc 2>/dev/null) | gzip -6 > "$work/initramfs.cpio.gz"

mkdir -p "$work/out"
mv "$work/initramfs.cpio.gz" "$work/out/"
cp "$work/tree/boot/vmlinuz-$release" "$work/out/vmlinuz"
cp "$work/tree/boot/config-$release" "$work/out/config"
echo "$release" > "$work/out/release"
rm -rf "$dest"
mv "$work/out" "$dest"
log "cached $pkg in $dest"
echo "$dest"
