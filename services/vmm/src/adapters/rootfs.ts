import { mkdirSync, readFileSync } from "node:fs";
import { runCommand } from "./command.js";

/**
 * The sandbox's root: the image read-only (overlay lowerdir) under the sandbox's own writable
 * layer (upperdir, on the sandbox's own size-capped disk; see loop-disk.ts). Mounted in the
 * vmm's mount namespace, so it outlives vmm restarts; runsc (with `--overlay2=none`) serves it
 * to the sandbox through its gofer.
 */
export interface RootfsLayout {
  lower: string;
  upper: string;
  work: string;
  target: string;
}

/** Mount points in this process's mount namespace (octal escapes decoded). */
export function mountedPaths(): Set<string> {
  const out = new Set<string>();
  const text = readFileSync("/proc/self/mountinfo", "utf8");
  for (const line of text.split("\n")) {
    const field = line.split(" ")[4];
    if (field)
      out.add(field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))));
  }
  return out;
}

export function isMounted(path: string): boolean {
  return mountedPaths().has(path);
}

export async function mountRootfs(layout: RootfsLayout): Promise<void> {
  if (isMounted(layout.target)) return;
  for (const dir of [layout.upper, layout.work, layout.target]) mkdirSync(dir, { recursive: true });
  for (const p of [layout.lower, layout.upper, layout.work]) {
    if (/[,:\s]/.test(p)) throw new Error(`overlay path ${p} must not contain ',', ':' or spaces`);
  }
  await runCommand("mount", [
    "-t",
    "overlay",
    "overlay",
    "-o",
    // nosuid,nodev: sandbox root's files are host uid-0 files; they must not act as setuid
    // programs or devices on the host.
    `nosuid,nodev,lowerdir=${layout.lower},upperdir=${layout.upper},workdir=${layout.work}`,
    layout.target,
  ]);
}

/** Unmounts if mounted; a busy mount is detached lazily so cleanup always completes. */
export async function unmountRootfs(target: string): Promise<void> {
  if (!isMounted(target)) return;
  try {
    await runCommand("umount", [target]);
  } catch {
    await runCommand("umount", ["-l", target]);
  }
}
