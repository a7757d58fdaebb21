#!/usr/bin/env bash
# Installs what apisix-profile needs on Debian 12 and builds it. Safe to run
# again: it only installs what is missing and rebuilds what changed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (apt packages, BPF): sudo bash scripts/setup.sh" >&2
  exit 1
fi

# Build tools, BPF toolchain, and the real parts the demo and tests start:
# nginx with ngx_lua on OpenResty's LuaJIT, and wrk for load; perf
# (linux-perf) and bpftrace are the peers `npm run bench` measures against.
packages=(
  clang llvm libelf-dev zlib1g-dev bpftool make g++ python3 pkg-config dpkg-dev
  nginx-core libnginx-mod-http-lua lua-resty-core wrk curl binutils
  linux-perf bpftrace
)
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
