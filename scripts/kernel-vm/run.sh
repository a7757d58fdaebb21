#!/usr/bin/env bash
# run.sh KERNEL_DIR OUT_DIR [--timeout SEC] -- COMMAND...
# Boots the kernel that fetch-kernel.sh cached in KERNEL_DIR under qemu (TCG:
# this machine has no KVM) with the host's / as a read-only root under a tmpfs
# overlay, runs COMMAND in the caller's cwd as root, and powers off.
# OUT_DIR is shared read-write at the same path in the guest. It gets:
#   console.log   the serial console; stdout gets it from init's first line
#                 on, without kernel messages (all of it: KERNEL_VM_VERBOSE=1)
#   guest.log     COMMAND's stdout+stderr
#   exit-status   COMMAND's exit status
# Exit: COMMAND's status; 124 when the timeout (default 600 s) killed qemu;
# 125 when the guest never wrote a status (panic, init failure) or on a usage
# error.
set -euo pipefail

die() { echo "run.sh: $*" >&2; exit 125; }
usage() { die "usage: run.sh KERNEL_DIR OUT_DIR [--timeout SEC] -- COMMAND..."; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[[ $# -ge 2 ]] || usage
kdir=$1 out=$2
shift 2
timeout=600
while [[ $# -gt 0 ]]; do
  case "$1" in
    --timeout) [[ ${2:-} =~ ^[0-9]+$ ]] || usage; timeout=$2; shift 2 ;;
    --) shift; break ;;
    *) usage ;;
  esac
done
[[ $# -gt 0 ]] || usage

for f in vmlinuz initramfs.cpio.gz release; do
  [[ -s $kdir/$f ]] || die "$kdir/$f is missing; run scripts/kernel-vm/fetch-kernel.sh 6.1|6.12 and pass the directory it prints"
done
mkdir -p "$out"
out=$(cd "$out" && pwd -P)
[[ $out != / && $out != *$'\n'* ]] || die "OUT_DIR must be a directory other than / with no newline in its name"

if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "run.sh: qemu-system-x86_64 is missing: apt-get install qemu-system-x86" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >&2 \
    || die "apt-get install qemu-system-x86 failed; install it by hand"
fi
command -v busybox >/dev/null || die "busybox is missing; run fetch-kernel.sh first (it installs busybox-static)"

# The command travels as a bash script in OUT_DIR: the kernel command line
# cannot carry arbitrary quoting.
rm -rf "$out/.kernel-vm" "$out/console.log" "$out/guest.log" "$out/exit-status"
mkdir -p "$out/.kernel-vm"
printf '%s\n' "$out" > "$out/.kernel-vm/outdir"
{
  # The guest's /run is a fresh tmpfs: a cwd there does not exist.
  printf 'cd %q || { echo "kernel-vm: no such directory in the guest: %q"; exit 125; }\n' "$PWD" "$PWD"
  printf 'exec'; printf ' %q' "$@"; printf '\n'
} > "$out/.kernel-vm/cmd"

# The cached initramfs holds busybox and modules; the kernel unpacks
# concatenated archives in order, so appending one with /init adds it.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/init.d"
install -m 0755 "$here/init" "$tmp/init.d/init"
{
  cat "$kdir/initramfs.cpio.gz"
  (cd "$tmp/init.d" && echo init | busybox cpio -o -H newc 2>/dev/null | gzip)
} > "$tmp/initrd"

release=$(cat "$kdir/release")
echo "run.sh: booting $release (timeout ${timeout}s), output in $out" >&2
start=$(date +%s.%N)
set +e
# qemu option values escape a comma by doubling it.
timeout -k 10 "$timeout" qemu-system-x86_64 \
  -accel tcg,thread=multi -cpu max -m 4G -smp 2 \
  -nographic -no-reboot -net none \
  -kernel "$kdir/vmlinuz" -initrd "$tmp/initrd" \
  -append "console=ttyS0 panic=-1 ${KERNEL_VM_APPEND:-}" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs "local,path=${out//,/,,},mount_tag=out,security_model=none,multidevs=remap" \
  </dev/null 2>&1 | tr -d '\r' | tee "$out/console.log" \
  | if [[ ${KERNEL_VM_VERBOSE:-} == 1 ]]; then cat; else
      # From init's first line on, without the kernel's own (timestamped) lines.
      awk '/kernel-vm/ { on = 1 } on && !/^\[ *[0-9]+\.[0-9]+\] / { print; fflush() }'
    fi
rc=${PIPESTATUS[0]}
set -e
end=$(date +%s.%N)

since() { awk -v a="$start" -v b="$1" 'BEGIN { printf "%.1f", b - a }'; }
timing="total $(since "$end") s"
if [[ -e $out/.kernel-vm/started ]]; then
  timing="command started $(since "$(stat -c %.9Y "$out/.kernel-vm/started")") s after launch, $timing"
fi

if [[ $rc -eq 124 || $rc -eq 137 ]]; then
  echo "run.sh: $release: timed out after ${timeout}s; last 30 console lines:" >&2
  tail -n 30 "$out/console.log" >&2
  exit 124
fi
if [[ ! -s $out/exit-status ]]; then
  echo "run.sh: $release: the guest wrote no exit status (qemu exit $rc; kernel panic or init failure?); last 30 console lines:" >&2
  tail -n 30 "$out/console.log" >&2
  exit 125
fi
status=$(cat "$out/exit-status")
echo "run.sh: $release: exit $status; $timing" >&2
exit "$status"
