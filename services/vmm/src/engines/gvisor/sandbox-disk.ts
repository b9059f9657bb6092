import { existsSync, mkdirSync, statSync } from "node:fs";
import { createExt4Image, mountExt4Image, unmountExt4Image, usedBytes } from "../../adapters/loop-disk.js";
import { isMounted, mountRootfs, unmountRootfs } from "../../adapters/rootfs.js";
import type { SandboxLayout } from "./layout.js";

/** Smallest disk: ext4's own metadata plus a usable upper. */
export const MIN_DISK_SIZE_MB = 64;
export const MAX_DISK_SIZE_MB = 1024 * 1024;

/**
 * The sandbox's filesystems on the host (finding #5): its ext4 image (the quota) mounted at
 * `diskMount`, holding the overlay's upper and work dirs and the resolv.conf/hosts files, and
 * the overlay (image lower + that upper) at `rootfs`. Both are mounted `nosuid,nodev`
 * (finding #14). Idempotent: a mount that is already there is kept, so a restart, an
 * adoption or a restore just calls it again.
 */
export async function mountSandboxFs(
  layout: SandboxLayout,
  lower: string,
  create?: { diskSizeMb: number },
): Promise<void> {
  if (create !== undefined) await createExt4Image(layout.diskImage, create.diskSizeMb);
  if (!layout.legacyDisk) {
    if (!existsSync(layout.diskImage)) throw new Error(`sandbox disk ${layout.diskImage} is missing`);
    await mountExt4Image(layout.diskImage, layout.diskMount);
    for (const d of [layout.upper, layout.work]) mkdirSync(d, { recursive: true, mode: 0o755 });
  }
  await mountRootfs({ lower, upper: layout.upper, work: layout.work, target: layout.rootfs });
}

/** Unmounts the overlay, then the disk (which frees its loop device). Missing mounts are fine. */
export async function unmountSandboxFs(layout: SandboxLayout): Promise<void> {
  await unmountRootfs(layout.rootfs);
  if (!layout.legacyDisk) await unmountExt4Image(layout.diskMount);
}

/**
 * Bytes the sandbox uses on its disk: the mounted fs's used blocks, or the image's allocated
 * blocks while it is unmounted (cold); undefined for a legacy sandbox (no image).
 */
export function sandboxDiskBytes(layout: SandboxLayout): number | undefined {
  if (layout.legacyDisk) return undefined;
  try {
    if (isMounted(layout.diskMount)) return usedBytes(layout.diskMount);
    return statSync(layout.diskImage).blocks * 512;
  } catch {
    return 0;
  }
}
