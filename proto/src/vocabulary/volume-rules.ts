// Volume rules shared by the gateway (validation), the CLI (flag parsing) and the vmm (a second
// check before anything is mounted): what a size looks like, and where a volume may be mounted.

/** At most this many volumes per sandbox (v1's limit). */
export const MAX_VOLUMES_PER_SANDBOX = 24;

/**
 * Directories a volume may never cover, nor sit under: the sandbox's own system tree and the
 * mounts the product puts there (agent package, boot config, name files, tmpfs dirs).
 */
const RESERVED_TREES = [
  "/proc",
  "/sys",
  "/dev",
  "/run",
  "/tmp",
  "/etc",
  "/bin",
  "/sbin",
  "/lib",
  "/lib32",
  "/lib64",
  "/libx32",
  "/usr",
  "/boot",
  "/var/lib/dpkg",
  "/.bhatti",
  "/.bhatti-boot",
];

/** Why `mount` cannot hold a volume, or undefined when it can. */
export function volumeMountProblem(mount: string): string | undefined {
  const shown = JSON.stringify(mount.slice(0, 200));
  if (!mount.startsWith("/")) return `mount path ${shown} must be absolute`;
  if (mount.length > 1024) return "mount path is longer than 1024 characters";
  const parts = mount.split("/").filter((p) => p !== "");
  if (parts.some((p) => p === ".." || p === ".")) return `mount path ${shown} must not contain "." or ".."`;
  if (/[\u0000-\u001f,:]/.test(mount))
    return `mount path ${shown} must not contain ":", "," or control characters`;
  if (parts.length === 0) return "a volume cannot be mounted at /";
  const normalized = `/${parts.join("/")}`;
  for (const tree of RESERVED_TREES) {
    if (normalized === tree || normalized.startsWith(`${tree}/`)) {
      return `mount path ${normalized} is reserved (${tree} belongs to the system)`;
    }
  }
  return undefined;
}

/** The canonical form of a valid mount path (no doubled or trailing slashes). */
export function normalizeVolumeMount(mount: string): string {
  return `/${mount
    .split("/")
    .filter((p) => p !== "")
    .join("/")}`;
}

/**
 * A size as MiB: "512M", "1G", "10G", "1.5G", "2048" (MiB) or "64MiB"/"1GiB"; undefined when it
 * does not parse or is not a whole, positive number of MiB.
 */
export function parseSizeMb(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(m|mb|mib|g|gb|gib|t|tb|tib)?\s*$/i.exec(text);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = (m[2] ?? "m").toLowerCase()[0];
  const mb = unit === "t" ? n * 1024 * 1024 : unit === "g" ? n * 1024 : n;
  return Number.isInteger(mb) && mb > 0 ? mb : undefined;
}

/** One `--volume NAME:/path[:ro]` flag, or a message saying what is wrong with it. */
export function parseVolumeFlag(
  text: string,
): { name: string; mount: string; readOnly: boolean } | { error: string } {
  const parts = text.split(":");
  let readOnly = false;
  if (parts.length === 3) {
    if (parts[2] !== "ro" && parts[2] !== "rw")
      return { error: `--volume ${text}: the third part must be ro or rw` };
    readOnly = parts[2] === "ro";
  } else if (parts.length !== 2) {
    return { error: `--volume ${text}: use NAME:/path or NAME:/path:ro` };
  }
  const [name = "", mount = ""] = parts;
  if (name === "") return { error: `--volume ${text}: the volume name is empty` };
  return { name, mount, readOnly };
}
