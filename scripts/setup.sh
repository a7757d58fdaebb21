#!/usr/bin/env bash
# Installs what apisix-profile needs on Debian 12 and builds it. Safe to run
# again: it only installs what is missing and rebuilds what changed.
#   bash scripts/setup.sh           what the profiler and its demo need
#   bash scripts/setup.sh --tests   also what the test suite needs: the
#                                   LuaJIT builds it profiles, Chromium,
#                                   Docker (started if not running)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tests=0
case "${1:-}" in
  --tests) tests=1 ;;
  "") ;;
  *) echo "setup: unknown argument $1 (use --tests or nothing)" >&2; exit 2 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (apt packages, BPF): sudo bash scripts/setup.sh" >&2
  exit 1
fi

# Build tools, BPF toolchain, and the real parts the demo and tests start:
# nginx with ngx_lua on OpenResty's LuaJIT, and wrk for load.
packages=(
  clang llvm libelf-dev zlib1g-dev bpftool make g++ python3 pkg-config dpkg-dev
  nginx-core libnginx-mod-http-lua lua-resty-core wrk curl binutils
)
# For the tests and benchmarks: chromium runs the flame graph's browser test
# (headless, via playwright-core); docker.io runs the container tests; perf
# (linux-perf) and bpftrace are the peers `npm run bench` measures against;
# qemu, busybox-static and xz-utils boot the kernel matrix (scripts/kernel-vm).
if [ "$tests" = 1 ]; then
  packages+=(chromium docker.io linux-perf bpftrace qemu-system-x86 busybox-static xz-utils)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  # Keep Debian's nginx service from starting on port 80 while it installs.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created_policy=1
  fi
  trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v node >/dev/null || ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
  echo "setup: Node.js 20 or newer is needed (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # `npm install` from the committed lock file: npm 11's `npm ci` rejects a
  # lock that leaves out other platforms' optional packages (rollup's).
  npm install --no-fund --no-audit
fi
npm run --silent build

if [ "$tests" = 1 ]; then
  # The LuaJIT builds and modes the tests profile (cached; ~2 min the first time).
  bash scripts/build-luajit-variants.sh
  # Debian's 6.1 and 6.12 kernels for the kernel matrix (cached, never installed).
  for line in 6.1 6.12; do bash scripts/kernel-vm/fetch-kernel.sh "$line" >/dev/null; done
  # A Docker engine for the container tests.
  if ! docker info >/dev/null 2>&1; then
    echo "setup: starting dockerd"
    nohup dockerd >/var/log/apisix-profile-dockerd.log 2>&1 &
    for _ in $(seq 1 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
    docker info >/dev/null 2>&1 || { echo "setup: dockerd did not start; see /var/log/apisix-profile-dockerd.log" >&2; exit 1; }
  fi
fi
