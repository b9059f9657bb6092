#!/bin/sh
# Builds the "busybox" sandbox image: a 2 MB root filesystem with static busybox, the user
# `lohar` (uid 1000) and /workspace. Fast to build (< 0.1 s); used by tests and benchmarks that
# do not need Debian. The agent runs from the read-only /.bhatti package, so the image needs no
# Node or glibc.
#
# Output: <state_dir>/images/busybox/{rootfs,image.json}; image.json is written last.
# Usage: images/busybox/build.sh [--state-dir DIR] [--force]
set -eu

STATE_DIR="${BHATTI_STATE_DIR:-/var/lib/bhatti}"
FORCE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --state-dir) STATE_DIR="$2"; shift 2 ;;
    --force) FORCE=1; shift ;;
    *) echo "usage: $0 [--state-dir DIR] [--force]" >&2; exit 2 ;;
  esac
done

NAME=busybox
DIR="$STATE_DIR/images/$NAME"
if [ "$FORCE" = 0 ] && [ -f "$DIR/image.json" ] && [ -x "$DIR/rootfs/bin/sh" ]; then
  exit 0
fi
BUSYBOX="$(command -v busybox || true)"
[ -n "$BUSYBOX" ] || { echo "images/$NAME: busybox missing (apt-get install busybox-static)" >&2; exit 1; }

mkdir -p "$DIR"
tmp="$(mktemp -d "$DIR/rootfs.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT INT TERM
mkdir -p "$tmp/bin" "$tmp/sbin" "$tmp/usr/bin" "$tmp/usr/sbin" "$tmp/etc" "$tmp/proc" "$tmp/sys" \
  "$tmp/dev" "$tmp/tmp" "$tmp/run" "$tmp/root" "$tmp/home/lohar" "$tmp/workspace" "$tmp/.bhatti"
cp "$BUSYBOX" "$tmp/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$tmp/bin/$applet"
done
chmod 1777 "$tmp/tmp"
cat >"$tmp/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
lohar:x:1000:1000:lohar:/home/lohar:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$tmp/etc/group" <<'EOF'
root:x:0:
sudo:x:27:lohar
lohar:x:1000:
nogroup:x:65534:
EOF
echo bhatti >"$tmp/etc/hostname"
printf 'nameserver 1.1.1.1\n' >"$tmp/etc/resolv.conf"
chown 1000:1000 "$tmp/home/lohar" "$tmp/workspace"

rm -rf "$DIR/rootfs"
mv "$tmp" "$DIR/rootfs"
trap - EXIT INT TERM
size=$(du -sk "$DIR/rootfs" | cut -f1)
cat >"$DIR/image.json.tmp" <<EOF
{"name":"$NAME","description":"static busybox with user lohar (uid 1000), for tests","os":"busybox","user":"lohar","size_bytes":$((size * 1024)),"built_at":"$(date -u +%Y-%m-%dT%H:%M:%SZ)","source":"busybox-static"}
EOF
mv "$DIR/image.json.tmp" "$DIR/image.json"
