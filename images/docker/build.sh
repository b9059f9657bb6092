#!/bin/sh
# Builds the "docker" tier: minimal + Debian's Docker Engine (docker.io 20.10: dockerd,
# containerd, runc, the docker CLI) and iptables, with dockerd started at boot.
#
# Docker inside gVisor needs settings of the sandbox, not of the rootfs; they are stored in
# image.json and the vmm applies them on create and on every restore (docs/tiers.md):
#   runsc.flags  --net-raw (gVisor's docker-in-gVisor guide requires it)
#   runsc.mounts cgroupfs at /sys/fs/cgroup (dockerd refuses to start without the devices
#                cgroup) and a tmpfs at /var/lib/docker (gVisor allows only tmpfs as an
#                overlay upper dir, and overlay2 is the storage driver; it counts against the
#                sandbox's memory and is saved in each checkpoint)
#   init         the boot hook: starts dockerd as root (through the agent's sudo)
# There is no bridge network inside gVisor: run containers with --network=host (the default
# here, set in daemon.json via "bridge": "none") or --network=none.
#
# Usage: images/docker/build.sh [--state-dir DIR] [--mirror URL] [--force]   (see images/lib/tier.sh)
set -eu
NAME=docker
DESCRIPTION="minimal + Docker Engine 20.10 (dockerd started at boot; containers use --network=host)"
. "$(dirname "$0")/../lib/tier.sh"

tier_begin "$@"
tier_apt docker.io iptables
tier_chroot usermod -aG docker lohar
mkdir -p "$ROOTFS/etc/docker"
# The socket belongs to the user's own group: the agent runs commands with the user's primary
# group only (Node drops supplementary groups), so membership in `docker` alone is not enough.
cat >"$ROOTFS/etc/docker/daemon.json" <<'JSON'
{
  "group": "lohar",
  "iptables": false,
  "ip6tables": false,
  "bridge": "none",
  "storage-driver": "overlay2"
}
JSON
cat >"$ROOTFS/usr/local/sbin/bhatti-start-dockerd" <<'SCRIPT'
#!/bin/sh
# Starts dockerd in its own session (it outlives the boot hook) and waits until it answers.
# Run as root; idempotent (a second call while dockerd runs only waits for it).
set -eu
if ! pidof dockerd >/dev/null 2>&1; then
  setsid -f dockerd >>/var/log/dockerd.log 2>&1 </dev/null
fi
i=0
until docker info >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -gt 300 ]; then
    echo "dockerd did not answer in 30 s; see /var/log/dockerd.log" >&2
    exit 1
  fi
  sleep 0.1
done
SCRIPT
chmod 0755 "$ROOTFS/usr/local/sbin/bhatti-start-dockerd"

docker_version=$(tier_chroot dpkg-query -W -f='${Version}' docker.io)
tier_finish ",\"docker\":\"$docker_version\",\"init\":\"sudo -n /usr/local/sbin/bhatti-start-dockerd\",\"runsc\":{\"flags\":[\"--net-raw\"],\"mounts\":[{\"destination\":\"/sys/fs/cgroup\",\"type\":\"cgroup\"},{\"destination\":\"/var/lib/docker\",\"type\":\"tmpfs\",\"options\":[\"size=2g\"]}]}"
