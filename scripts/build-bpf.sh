#!/usr/bin/env bash
# Compiles bpf/profiler.bpf.c into build/bpf/profiler.bpf.o (CO-RE, BTF).
# Needs: clang, bpftool, the kernel's BTF, and the libbpf headers that
# scripts/build-libbpf.sh installs into build/libbpf/include.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/build/bpf"
inc="$root/build/libbpf/include"
mkdir -p "$out"

if [ ! -d "$inc/bpf" ]; then
  echo "build-bpf: libbpf headers missing in $inc: run scripts/build-libbpf.sh first" >&2
  exit 1
fi
if [ ! -r /sys/kernel/btf/vmlinux ]; then
  echo "build-bpf: /sys/kernel/btf/vmlinux is missing: this kernel has no BTF (CONFIG_DEBUG_INFO_BTF)" >&2
  exit 1
fi
# vmlinux.h is generated from the running kernel and never committed.
if [ ! -s "$out/vmlinux.h" ]; then
  bpftool btf dump file /sys/kernel/btf/vmlinux format c > "$out/vmlinux.h.tmp"
  mv "$out/vmlinux.h.tmp" "$out/vmlinux.h"
fi

# Each header stands alone: it includes what it uses.
for header in "$root"/bpf/*.bpf.h; do
  printf '#include "%s"\n' "$(basename "$header")" |
    clang -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_x86 -I "$out" -I "$inc" -I "$root/bpf" -fsyntax-only -x c - ||
    { echo "build-bpf: $(basename "$header") does not compile on its own" >&2; exit 1; }
done

clang -O2 -g -Wall -Werror -target bpf -D__TARGET_ARCH_x86 \
  -I "$out" -I "$inc" -I "$root/bpf" \
  -c "$root/bpf/profiler.bpf.c" -o "$out/profiler.bpf.o.tmp"
mv "$out/profiler.bpf.o.tmp" "$out/profiler.bpf.o"
