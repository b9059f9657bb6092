#!/bin/sh
# Builds the "minimal" sandbox image: Debian 12 (bookworm) minbase plus ca-certificates, curl,
# git, sudo, procps, iproute2, the user `lohar` (uid 1000, passwordless sudo) and /workspace.
#
# Output: <state_dir>/images/minimal/rootfs and, written last as the completion marker,
# <state_dir>/images/minimal/image.json. The vmm-service lists every images/<name>/image.json.
# Idempotent: an image whose image.json exists is left alone (pass --force to rebuild).
# A sandbox never writes here: it sees this tree read-only under its own overlay upper dir.
#
# Usage: images/minimal/build.sh [--state-dir DIR] [--mirror URL] [--force]
set -eu

STATE_DIR="${BHATTI_STATE_DIR:-/var/lib/bhatti}"
MIRROR="${BHATTI_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
FORCE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --state-dir) STATE_DIR="$2"; shift 2 ;;
    --mirror) MIRROR="$2"; shift 2 ;;
    --force) FORCE=1; shift ;;
    *) echo "usage: $0 [--state-dir DIR] [--mirror URL] [--force]" >&2; exit 2 ;;
  esac
done

NAME=minimal
DIR="$STATE_DIR/images/$NAME"
PACKAGES="ca-certificates,curl,git,sudo,procps,iproute2,less,locales"
log() { echo "images/$NAME: $*" >&2; }

if [ "$FORCE" = 0 ] && [ -f "$DIR/image.json" ] && [ -x "$DIR/rootfs/bin/sh" ]; then
  log "already built at $DIR"
  exit 0
fi
[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }
command -v debootstrap >/dev/null || { log "debootstrap missing (apt-get install debootstrap)"; exit 1; }

mkdir -p "$DIR"
tmp="$DIR/rootfs.tmp"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT INT TERM
started=$(date +%s)

log "debootstrap --variant=minbase $SUITE (about 30-60 s)"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$tmp" "$MIRROR" >&2

# The user every command runs as, with passwordless sudo and a workspace.
chroot "$tmp" /usr/sbin/groupadd -g 1000 lohar
chroot "$tmp" /usr/sbin/useradd -m -u 1000 -g 1000 -G sudo -s /bin/bash lohar
echo 'lohar ALL=(ALL) NOPASSWD:ALL' >"$tmp/etc/sudoers.d/lohar"
chmod 0440 "$tmp/etc/sudoers.d/lohar"
mkdir -p "$tmp/workspace"
chown 1000:1000 "$tmp/workspace"

# Locale, hostname and resolver defaults; the agent rewrites hostname and resolv.conf at boot.
echo 'en_US.UTF-8 UTF-8' >"$tmp/etc/locale.gen"
chroot "$tmp" /usr/sbin/locale-gen >/dev/null 2>&1 || true
echo bhatti >"$tmp/etc/hostname"
printf 'nameserver 1.1.1.1\nnameserver 8.8.8.8\n' >"$tmp/etc/resolv.conf"
# The agent package is bind-mounted here read-only.
mkdir -p "$tmp/.bhatti"

# Caches that only cost space (about 80 MB).
rm -rf "$tmp/var/cache/apt/archives/"*.deb "$tmp/var/lib/apt/lists/"* "$tmp/var/log/"*.log

rm -rf "$DIR/rootfs"
mv "$tmp" "$DIR/rootfs"
trap - EXIT INT TERM
size=$(du -sk "$DIR/rootfs" | cut -f1)
cat >"$DIR/image.json.tmp" <<EOF
{"name":"$NAME","description":"Debian 12 minbase with curl, git, sudo, procps, iproute2; user lohar (uid 1000)","os":"debian-12","user":"lohar","size_bytes":$((size * 1024)),"built_at":"$(date -u +%Y-%m-%dT%H:%M:%SZ)","source":"debootstrap $SUITE minbase"}
EOF
mv "$DIR/image.json.tmp" "$DIR/image.json"
log "built in $(($(date +%s) - started)) s, $((size / 1024)) MB"
