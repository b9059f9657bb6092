#!/bin/sh
# Builds the "computer" tier: minimal + an XFCE desktop on TigerVNC, with noVNC (websockify)
# serving a browser client on port 6901 (`bhatti publish desktop -p 6901`), and Chromium.
#
# At boot the image's init hook runs `bhatti-start-desktop` as the sandbox user: on the first
# boot it generates the VNC password (VNC authentication uses 8 characters), then starts
# Xvnc on :1 (loopback only, port 5901), the XFCE session, and websockify on 0.0.0.0:6901.
# `vnc-creds [--json]` prints the password and the client's address. The desktop size comes
# from DISPLAY_WIDTH, DISPLAY_HEIGHT and DISPLAY_DEPTH (sandbox env; 1280x800x24 by default).
#
# Usage: images/computer/build.sh [--state-dir DIR] [--mirror URL] [--force]   (see images/lib/tier.sh)
set -eu
NAME=computer
DESCRIPTION="minimal + XFCE desktop on TigerVNC, noVNC client on port 6901 (vnc-creds), Chromium"
. "$(dirname "$0")/../lib/tier.sh"

tier_begin "$@"
tier_apt xfce4 xfce4-terminal dbus-x11 tigervnc-standalone-server tigervnc-tools novnc \
  python3-websockify chromium fonts-liberation xfonts-base
# Packages that only make sense on a real machine and print errors without one.
tier_chroot apt-get purge -y -q xfce4-power-manager light-locker xscreensaver >/dev/null 2>&1 || true
# gVisor + GLib 2.74: see close-range-enosys.c. Built on the host (install.sh installs
# build-essential; same Debian 12 glibc), preloaded by bhatti-start-desktop only.
command -v cc >/dev/null || { log "a C compiler is needed (apt-get install build-essential)"; exit 1; }
mkdir -p "$ROOTFS/usr/local/lib/bhatti"
cc -O2 -shared -fPIC -o "$ROOTFS/usr/local/lib/bhatti/close-range-enosys.so" "$(dirname "$0")/close-range-enosys.c"
# The noVNC client at the site root (websockify serves /usr/share/novnc).
ln -sfn vnc.html "$ROOTFS/usr/share/novnc/index.html"

cat >"$ROOTFS/usr/local/bin/bhatti-start-desktop" <<'SCRIPT'
#!/bin/sh
# Starts the desktop for the calling user: Xvnc :1 (loopback), XFCE, websockify on :6901.
# Idempotent: what already runs is left alone. Logs go to ~/.local/state/bhatti-desktop/.
set -eu
# Every program of the session inherits the close_range workaround (see the image's build).
export LD_PRELOAD=/usr/local/lib/bhatti/close-range-enosys.so${LD_PRELOAD:+:$LD_PRELOAD}
width="${DISPLAY_WIDTH:-1280}"; height="${DISPLAY_HEIGHT:-800}"; depth="${DISPLAY_DEPTH:-24}"
state="$HOME/.local/state/bhatti-desktop"
mkdir -p "$state" "$HOME/.vnc"
# First boot: a random password (VNC authentication uses at most 8 characters).
if [ ! -s "$HOME/.vnc/passwd" ]; then
  umask 077
  password=$(head -c 64 /dev/urandom | tr -dc 'A-Za-z0-9' | head -c 8)
  printf '%s\n' "$password" >"$HOME/.vnc/password.txt"
  printf '%s\n' "$password" | vncpasswd -f >"$HOME/.vnc/passwd"
  umask 022
fi
if ! pgrep -u "$(id -u)" -x Xtigervnc >/dev/null; then
  setsid -f Xtigervnc :1 -geometry "${width}x${height}" -depth "$depth" -localhost=1 -rfbport 5901 \
    -SecurityTypes VncAuth -PasswordFile "$HOME/.vnc/passwd" -AlwaysShared \
    >>"$state/xvnc.log" 2>&1 </dev/null
  i=0
  until [ -S /tmp/.X11-unix/X1 ]; do
    i=$((i + 1)); [ "$i" -le 300 ] || { echo "Xvnc did not start; see $state/xvnc.log" >&2; exit 1; }
    sleep 0.1
  done
fi
if ! pgrep -u "$(id -u)" -x xfce4-session >/dev/null; then
  DISPLAY=:1 setsid -f dbus-launch --exit-with-session startxfce4 >>"$state/xfce.log" 2>&1 </dev/null
fi
if ! pgrep -u "$(id -u)" -f 'websockify.*6901' >/dev/null; then
  setsid -f websockify --web /usr/share/novnc 0.0.0.0:6901 127.0.0.1:5901 >>"$state/websockify.log" 2>&1 </dev/null
fi
SCRIPT
chmod 0755 "$ROOTFS/usr/local/bin/bhatti-start-desktop"

cat >"$ROOTFS/usr/local/bin/vnc-creds" <<'SCRIPT'
#!/bin/sh
# Prints the desktop's VNC password and where the browser client listens. --json for scripts.
set -eu
home=$(getent passwd 1000 | cut -d: -f6)
file="$home/.vnc/password.txt"
[ -r "$file" ] || { echo "vnc-creds: no password yet (the desktop starts at boot: bhatti-start-desktop)" >&2; exit 1; }
password=$(cat "$file")
if [ "${1:-}" = "--json" ]; then
  printf '{"password":"%s","port":6901,"path":"/vnc.html","display":":1"}\n' "$password"
else
  printf 'password: %s\nclient:   port 6901, /vnc.html (bhatti publish <sandbox> -p 6901)\n' "$password"
fi
SCRIPT
chmod 0755 "$ROOTFS/usr/local/bin/vnc-creds"

versions=$(tier_chroot dpkg-query -W -f='${Package}=${Version} ' tigervnc-standalone-server novnc xfce4 chromium)
tier_finish ",\"packages\":\"$versions\",\"init\":\"/usr/local/bin/bhatti-start-desktop\""
