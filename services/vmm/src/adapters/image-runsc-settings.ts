/**
 * Per-image sandbox settings that live in the image's image.json, for images whose software
 * needs more from gVisor than a plain sandbox gets (Docker inside gVisor needs cgroupfs, a
 * tmpfs overlay upper dir and raw sockets, docs/tiers.md):
 *
 *   "runsc": { "flags": ["--net-raw"],
 *              "mounts": [{ "destination": "/sys/fs/cgroup", "type": "cgroup" },
 *                         { "destination": "/var/lib/docker", "type": "tmpfs", "options": ["size=2g"] }] }
 *
 * The vmm copies them into each sandbox's record at create, so the sandbox keeps the settings
 * it was made with (its OCI bundle holds the mounts; run, checkpoint and restore get the
 * flags). Only settings that stay inside the sandbox are accepted: runsc flags from an
 * allowlist, and mounts of the sentry's own cgroupfs or tmpfs (never a host path).
 */
export interface ImageRunscSettings {
  /** runsc global flags added to run, checkpoint and restore of the image's sandboxes. */
  flags: string[];
  /** OCI mounts added to the sandbox's spec. */
  mounts: ImageMount[];
}

export interface ImageMount {
  destination: string;
  type: "cgroup" | "tmpfs";
  source: string;
  options: string[];
}

/** runsc flags an image may ask for: each changes what the guest can do inside its own sandbox. */
export const ALLOWED_RUNSC_FLAGS: readonly string[] = ["--net-raw", "--allow-packet-socket-write"];

/** Mount points the engine itself owns (the agent, boot config, name files, sudo shim, kernel fs). */
const RESERVED_DESTINATIONS = [
  "/",
  "/proc",
  "/dev",
  "/sys",
  "/tmp",
  "/run",
  "/.bhatti",
  "/etc",
  "/usr/bin/sudo",
];
const MOUNT_OPTION = /^(size=\d+[kmg]?|nr_inodes=\d+[kmg]?|mode=[0-7]{3,4}|nosuid|nodev|noexec|ro|rw)$/;

export class ImageSettingsError extends Error {
  override readonly name = "ImageSettingsError";
}

/** Validates image.json's `runsc` field; undefined when absent. Throws ImageSettingsError. */
export function parseImageRunscSettings(raw: unknown): ImageRunscSettings | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ImageSettingsError("runsc must be an object");
  }
  const o = raw as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (key !== "flags" && key !== "mounts") throw new ImageSettingsError(`runsc.${key} is not a setting`);
  }
  const flags = stringArray(o["flags"], "runsc.flags");
  for (const f of flags) {
    if (!ALLOWED_RUNSC_FLAGS.includes(f)) {
      throw new ImageSettingsError(
        `runsc flag ${f} is not allowed (allowed: ${ALLOWED_RUNSC_FLAGS.join(", ")})`,
      );
    }
  }
  const rawMounts = o["mounts"] ?? [];
  if (!Array.isArray(rawMounts)) throw new ImageSettingsError("runsc.mounts must be an array");
  const mounts = rawMounts.map((m, i) => parseMount(m, `runsc.mounts[${i}]`));
  const seen = new Set<string>();
  for (const m of mounts) {
    if (seen.has(m.destination)) throw new ImageSettingsError(`two mounts at ${m.destination}`);
    seen.add(m.destination);
  }
  return { flags: [...new Set(flags)], mounts };
}

function parseMount(raw: unknown, where: string): ImageMount {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ImageSettingsError(`${where} must be an object`);
  }
  const m = raw as Record<string, unknown>;
  for (const key of Object.keys(m)) {
    if (!["destination", "type", "options"].includes(key)) {
      throw new ImageSettingsError(`${where}.${key} is not a mount setting`);
    }
  }
  const destination = m["destination"];
  if (typeof destination !== "string" || !/^(\/[A-Za-z0-9._-]+)+$/.test(destination)) {
    throw new ImageSettingsError(`${where}.destination must be an absolute path without . or .. parts`);
  }
  if (destination.split("/").some((p) => p === "." || p === "..")) {
    throw new ImageSettingsError(`${where}.destination must not have . or .. parts`);
  }
  // /sys/fs/cgroup is the one place under a reserved tree an image may mount (cgroupfs).
  const cgroupFs = destination === "/sys/fs/cgroup";
  for (const r of RESERVED_DESTINATIONS) {
    const inside = r === "/" ? destination === "/" : destination === r || destination.startsWith(`${r}/`);
    if (inside && !cgroupFs)
      throw new ImageSettingsError(`${where}.destination ${destination} is the engine's`);
  }
  const type = m["type"];
  if (type !== "cgroup" && type !== "tmpfs")
    throw new ImageSettingsError(`${where}.type must be cgroup or tmpfs`);
  if (type === "cgroup" && !cgroupFs)
    throw new ImageSettingsError(`${where}: cgroupfs mounts only at /sys/fs/cgroup`);
  const options = stringArray(m["options"], `${where}.options`);
  for (const opt of options) {
    if (!MOUNT_OPTION.test(opt)) throw new ImageSettingsError(`${where}: mount option ${opt} is not allowed`);
  }
  return { destination, type, source: type, options };
}

function stringArray(raw: unknown, where: string): string[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw) || raw.some((x) => typeof x !== "string")) {
    throw new ImageSettingsError(`${where} must be an array of strings`);
  }
  return raw as string[];
}
