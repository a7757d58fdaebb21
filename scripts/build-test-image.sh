#!/usr/bin/env bash
# Builds the local Docker image apisix-profile-fixture:test: FROM scratch,
# holding the host's nginx, the ndk + ngx_lua modules, libluajit,
# lua-resty-core/lrucache, every shared library they need, and the fixture app
# (fixtures/app/) with fixtures/nginx/nginx.conf.template rendered for a
# container (listen 0.0.0.0:8080, daemon off, one worker). No registry needed:
# the rootfs is imported with `docker import`.
# Idempotent: skips the import when the image already carries the same
# content-hash label. Prints the image name.
# Usage: build-test-image.sh [IMAGE]   (default apisix-profile-fixture:test)
# Try it: docker run -d -p 127.0.0.1:18090:8080 apisix-profile-fixture:test
#         curl 127.0.0.1:18090/truth
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
image=${1:-apisix-profile-fixture:test}
label=apisix-profile.content-hash
nginx_bin=/usr/sbin/nginx
modules_dir=/usr/lib/nginx/modules
modules=("$modules_dir/ndk_http_module.so" "$modules_dir/ngx_http_lua_module.so")

for f in "$nginx_bin" "${modules[@]}"; do
  [ -r "$f" ] || { echo "build-test-image: $f is missing (apt-get install nginx libnginx-mod-http-lua)" >&2; exit 1; }
done
command -v docker >/dev/null || { echo "build-test-image: docker CLI not found (apt-get install docker.io)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
mkdir -p "$rootfs/usr/bin" "$rootfs/usr/sbin" "$rootfs/usr/lib" "$rootfs/usr/lib64"
# Merged /usr, as on Debian 12, so every host path also works in the image.
for d in bin sbin lib lib64; do ln -s "usr/$d" "$rootfs/$d"; done

# usr_path /lib/x/y -> /usr/lib/x/y (the merged-/usr spelling of a path).
usr_path() {
  case "$1" in
    /bin/* | /sbin/* | /lib/* | /lib64/*) echo "/usr$1" ;;
    *) echo "$1" ;;
  esac
}

# put PATH: copies the host file behind PATH to its real location in the
# rootfs, and makes PATH a symlink to it when the names differ. Files are
# only ever written to real paths, so no symlink is followed out of the rootfs.
put() {
  local src=$1 real dest
  real=$(readlink -f "$src")
  [ -f "$real" ] || { echo "build-test-image: $src is not a file" >&2; exit 1; }
  install -D -m "$(stat -c %a "$real")" "$real" "$rootfs$real"
  dest=$(usr_path "$src")
  if [ "$dest" != "$real" ] && [ ! -e "$rootfs$dest" ] && [ ! -L "$rootfs$dest" ]; then
    mkdir -p "$(dirname "$rootfs$dest")"
    if [ "$(dirname "$dest")" = "$(dirname "$real")" ]; then
      ln -s "$(basename "$real")" "$rootfs$dest"
    else
      ln -s "$real" "$rootfs$dest"
    fi
  fi
}

# Binaries, modules and the shared libraries they load (ldd lists the
# dynamic loader without "=>").
for f in "$nginx_bin" "${modules[@]}"; do
  put "$f"
  ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
done | sort -u | while read -r lib; do put "$lib"; done

# lua-resty-core and lua-resty-lrucache (docs left out).
dpkg -L lua-resty-core lua-resty-lrucache | grep -v '^/usr/share/doc/' | while read -r f; do
  if [ -f "$f" ] && [ ! -L "$f" ]; then put "$f"; fi
done

# Users: nginx's compiled-in default is "nobody"/"nogroup".
mkdir -p "$rootfs/etc"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\nnobody:x:65534:\n' > "$rootfs/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files\n' > "$rootfs/etc/nsswitch.conf"
# Paths compiled into Debian's nginx that must exist at startup.
mkdir -p "$rootfs/var/lib/nginx" "$rootfs/var/log/nginx" "$rootfs/run" "$rootfs/var/lock" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"

# The fixture app at /app (Lua chunks read as /app/work.lua) and nginx's
# prefix at /app/nginx; the error log goes to the container's stderr.
install -D -m 644 "$root/fixtures/app/"*.lua -t "$rootfs/app"
mkdir -p "$rootfs/app/nginx/conf" "$rootfs/app/nginx/logs"
ln -s /dev/stderr "$rootfs/app/nginx/logs/error.log"
sed -e "s#@MODULES@#$modules_dir#g" -e "s#@WORKERS@#1#g" -e "s#@APP@#/app#g" \
    -e "s#@PORT@#8080#g" -e "s#@JIT_LINE@#jit.on()#g" \
    -e "s#@LISTEN_ADDR@#0.0.0.0#g" -e "s#@DAEMON@#off#g" \
    "$root/fixtures/nginx/nginx.conf.template" > "$rootfs/app/nginx/conf/nginx.conf"
if grep -q '@[A-Z_]*@' "$rootfs/app/nginx/conf/nginx.conf"; then
  echo "build-test-image: unfilled placeholder in nginx.conf:" >&2
  grep -n '@[A-Z_]*@' "$rootfs/app/nginx/conf/nginx.conf" >&2
  exit 1
fi

# A reproducible tarball: its hash (plus the image settings) names the content.
changes=(
  'ENTRYPOINT ["/usr/sbin/nginx", "-p", "/app/nginx/", "-c", "conf/nginx.conf"]'
  'EXPOSE 8080/tcp'
)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$rootfs" -cf "$work/rootfs.tar" .
hash=$( { sha256sum < "$work/rootfs.tar"; printf '%s\n' "${changes[@]}"; } | sha256sum | cut -c1-64)

have=$(docker image inspect --format "{{ index .Config.Labels \"$label\" }}" "$image" 2>/dev/null || true)
if [ "$have" = "$hash" ]; then
  echo "build-test-image: $image is up to date (content $hash)" >&2
  echo "$image"
  exit 0
fi
args=()
for c in "${changes[@]}" "LABEL $label=$hash"; do args+=(--change "$c"); done
docker import "${args[@]}" --message "apisix-profile fixture ($hash)" "$work/rootfs.tar" "$image" >/dev/null
echo "build-test-image: built $image ($(du -k "$work/rootfs.tar" | cut -f1) KiB rootfs, content $hash)" >&2
echo "$image"
