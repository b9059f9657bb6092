#!/bin/sh
# Installs gVisor's runsc for bhatti, idempotently, from one of two checksum-pinned sources.
#
# Default (Debian; the only source these build hosts reach): the Debian trixie build
# (0.0~20240729, static), which supports the systrap and ptrace platforms and is the build the
# network + checkpoint recipe was verified with (docs/engines.md). It is fetched with
# `apt-get download` through a private apt state dir that knows a trixie source (the host's own
# apt configuration is never changed; apt verifies the .deb against the signed Release file),
# then unpacked with `dpkg -x` and installed as $BHATTI_RUNSC (default /usr/local/lib/bhatti/runsc).
# Fallback: bookworm's `apt-get install runsc` (0.0~20221219, ptrace only) at /usr/bin/runsc.
#
# --upstream (hosts that reach gVisor's release bucket): an upstream release binary, pinned by
# release name and SHA-512. Both pins are required, with no default, and come from the release's
# published `runsc.sha512` (see docs/engines.md, "Updating runsc"):
#   BHATTI_RUNSC_RELEASE=20250512.0 BHATTI_RUNSC_SHA512=<128 hex> scripts/install-runsc.sh --upstream
# The published checksum is fetched too and must equal the pin; the binary must hash to it.
# BHATTI_RUNSC_URL overrides the base URL (a mirror holding <release>/<arch>/runsc{,.sha512}).
#
# Usage: scripts/install-runsc.sh [--force] [--upstream]
# Prints the installed path on the last line of stdout.
set -eu

DEST="${BHATTI_RUNSC:-/usr/local/lib/bhatti/runsc}"
WANT_VERSION="0.0~20240729"
SUITE="${BHATTI_RUNSC_SUITE:-trixie}"
MIRROR="${BHATTI_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
FORCE=0
UPSTREAM=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --upstream) UPSTREAM=1 ;;
    *) echo "install-runsc: unknown option $arg (usage: [--force] [--upstream])" >&2; exit 2 ;;
  esac
done
UPSTREAM_BASE="${BHATTI_RUNSC_URL:-https://storage.googleapis.com/gvisor/releases/release}"

log() { echo "install-runsc: $*" >&2; }

installed_version() {
  [ -x "$1" ] || return 1
  "$1" --version 2>/dev/null | sed -n 's/^runsc version //p' | head -n1
}

if [ "$UPSTREAM" = 1 ]; then
  WANT_VERSION="release-${BHATTI_RUNSC_RELEASE:-}"
fi

if [ "$FORCE" = 0 ]; then
  v="$(installed_version "$DEST" || true)"
  case "$v" in
    "$WANT_VERSION"*) log "runsc $v already at $DEST"; echo "$DEST"; exit 0 ;;
  esac
fi

if [ "$(id -u)" != 0 ]; then
  log "must run as root"
  exit 1
fi

work="$(mktemp -d /tmp/bhatti-install-runsc.XXXXXX)"
trap 'rm -rf "$work"' EXIT INT TERM

fetch_trixie() {
  [ -r "$KEYRING" ] || { log "missing $KEYRING (apt install debian-archive-keyring)"; return 1; }
  mkdir -p "$work/state/lists/partial" "$work/cache/archives/partial" "$work/etc/preferences.d" "$work/deb"
  echo "deb [signed-by=$KEYRING] $MIRROR $SUITE main" >"$work/etc/sources.list"
  # A private apt world: its own lists, cache and sources; dpkg's status is still the host's,
  # which only affects candidate selection, not the download.
  set -- -o "Dir::State=$work/state" -o "Dir::Cache=$work/cache" \
    -o "Dir::Etc::SourceList=$work/etc/sources.list" -o "Dir::Etc::SourceParts=/dev/null" \
    -o "Dir::Etc::Preferences=/dev/null" -o "Dir::Etc::PreferencesParts=$work/etc/preferences.d" \
    -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1"
  apt-get "$@" -q update >&2 || return 1
  (cd "$work/deb" && apt-get "$@" -q download "runsc=$(apt-cache "$@" madison runsc |
    awk -v want="$WANT_VERSION" '$3 ~ "^"want {print $3; exit}')" >&2) || return 1
  deb="$(ls "$work/deb"/runsc_*.deb 2>/dev/null | head -n1)"
  [ -n "$deb" ] || return 1
  dpkg -x "$deb" "$work/x" || return 1
  bin="$work/x/usr/bin/runsc"
  [ -x "$bin" ] || bin="$work/x/usr/sbin/runsc"
  [ -x "$bin" ] || return 1
  mkdir -p "$(dirname "$DEST")"
  # Atomic replace: a running vmm-service keeps its old inode.
  install -m 0755 "$bin" "$DEST.new"
  mv -f "$DEST.new" "$DEST"
  return 0
}

# An upstream release binary, pinned by release and SHA-512 (no default for either: a bump is a
# deliberate, reviewed change that the conformance suite gates).
fetch_upstream() {
  release="${BHATTI_RUNSC_RELEASE:-}"
  pin="$(printf %s "${BHATTI_RUNSC_SHA512:-}" | tr 'A-F' 'a-f')"
  case "$release" in
    "" | *[!0-9.]*) log "--upstream needs BHATTI_RUNSC_RELEASE (e.g. 20250512.0)"; return 1 ;;
  esac
  if ! printf %s "$pin" | grep -Eq '^[0-9a-f]{128}$'; then
    log "--upstream needs BHATTI_RUNSC_SHA512: the 128-hex SHA-512 from the release's runsc.sha512"
    return 1
  fi
  arch="$(uname -m)"
  url="$UPSTREAM_BASE/$release/$arch"
  command -v curl >/dev/null 2>&1 || { log "curl is required for --upstream"; return 1; }
  curl -fsSL --proto =https --retry 3 -o "$work/runsc" "$url/runsc" || { log "cannot download $url/runsc"; return 1; }
  curl -fsSL --proto =https --retry 3 -o "$work/runsc.sha512" "$url/runsc.sha512" || {
    log "cannot download $url/runsc.sha512"
    return 1
  }
  published="$(awk '{print tolower($1); exit}' "$work/runsc.sha512")"
  actual="$(sha512sum "$work/runsc" | awk '{print $1}')"
  if [ "$published" != "$pin" ]; then
    log "published checksum of $release ($published) differs from the pin: refusing"
    return 1
  fi
  if [ "$actual" != "$pin" ]; then
    log "downloaded runsc hashes to $actual, not the pinned $pin: refusing"
    return 1
  fi
  mkdir -p "$(dirname "$DEST")"
  install -m 0755 "$work/runsc" "$DEST.new"
  mv -f "$DEST.new" "$DEST"
  return 0
}

if [ "$UPSTREAM" = 1 ]; then
  if fetch_upstream; then
    log "installed upstream runsc $(installed_version "$DEST") at $DEST (sha512 pinned)"
    echo "$DEST"
    exit 0
  fi
  log "upstream install failed; nothing was changed at $DEST"
  exit 1
fi

if fetch_trixie; then
  log "installed runsc $(installed_version "$DEST") at $DEST"
  echo "$DEST"
  exit 0
fi

log "trixie build unavailable; falling back to bookworm's runsc package (ptrace only)"
if ! command -v runsc >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends runsc >&2
fi
fallback="$(command -v runsc)"
mkdir -p "$(dirname "$DEST")"
ln -sf "$fallback" "$DEST"
log "installed runsc $(installed_version "$DEST") at $DEST (link to $fallback)"
echo "$DEST"
