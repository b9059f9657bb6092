import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  statfsSync,
  ftruncateSync,
} from "node:fs";
import { join } from "node:path";
import { runCommand } from "./command.js";
import { isMounted } from "./rootfs.js";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * A size-capped filesystem backed by a sparse file: an ext4 image loop-mounted on the host
 * (phase2-notes §3: the image size is the quota; writes past it get ENOSPC). Mounted
 * `nosuid,nodev`: files planted by sandbox root are host uid-0 files, and must never work as
 * setuid programs or device nodes on the host. `noinit_itable`: no background zeroing of inode
 * tables that are holes anyway. `discard`: blocks the sandbox frees are punched
 * out of the sparse image, so the host gets the space back. `mount -o loop` sets the loop
 * device's autoclear flag, so unmounting frees the device.
 */

/** Creates a sparse ext4 image of `sizeMb` MiB (about 20 ms for 4 GiB here). */
export async function createExt4Image(path: string, sizeMb: number): Promise<void> {
  const fd = openSync(path, "wx", 0o600);
  try {
    ftruncateSync(fd, sizeMb * 1024 * 1024);
  } finally {
    closeSync(fd);
  }
  // -m 0: no blocks reserved for root (everything in a sandbox may run as root anyway).
  // Lazy journal and inode-table init: the file is new and sparse, so what mkfs would zero
  // already reads as zeros. Zeroing the journal would write 64 MiB per 4 GiB sandbox (measured:
  // 66 MiB allocated per empty image, vs 2.2 MiB lazily).
  await runCommand(
    "mkfs.ext4",
    ["-q", "-F", "-m", "0", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1", path],
    { timeoutMs: 60_000 },
  );
}

export async function mountExt4Image(image: string, target: string): Promise<void> {
  if (isMounted(target)) return;
  mkdirSync(target, { recursive: true, mode: 0o700 });
  // The kernel frees an autoclear loop device asynchronously after the unmount (0.04–0.8 s here
  // under load, once over 5 s). A device still bound to this image would make mount try to
  // reuse it: wait for it first (a start right after a stop).
  const deadline = Date.now() + 10_000;
  while (loopDevicesBackedBy(image, true).length > 0 && Date.now() < deadline) await sleep(10);
  await runCommand(
    "mount",
    ["-t", "ext4", "-o", "loop,nosuid,nodev,noatime,discard,noinit_itable", image, target],
    {
      timeoutMs: 60_000,
    },
  );
}

/**
 * Unmounts if mounted; a busy mount is detached lazily. The loop device is freed by the kernel
 * afterwards, asynchronously (nothing waits for it: destroy and stop stay fast).
 */
export async function unmountExt4Image(target: string): Promise<void> {
  if (!isMounted(target)) return;
  try {
    await runCommand("umount", [target]);
  } catch {
    await runCommand("umount", ["-l", target]);
  }
}

/** Bytes used on the filesystem holding `path`. */
export function usedBytes(path: string): number {
  const s = statfsSync(path);
  return (s.blocks - s.bfree) * s.bsize;
}

/** Bytes an unprivileged writer may still use on the filesystem holding `path`. */
export function freeBytes(path: string): number {
  const s = statfsSync(path);
  return s.bavail * s.bsize;
}

/** Loop devices whose backing file starts with `prefix` (or is exactly it), for leak checks. */
export function loopDevicesBackedBy(prefix: string, exact = false): string[] {
  const out: string[] = [];
  let names: string[];
  try {
    names = readdirSync("/sys/block").filter((n) => n.startsWith("loop"));
  } catch {
    return out;
  }
  for (const n of names) {
    try {
      const file = readFileSync(join("/sys/block", n, "loop", "backing_file"), "utf8").trim();
      if (exact ? file === prefix : file.startsWith(prefix)) out.push(`/dev/${n} (${file})`);
    } catch {
      // not bound to a file
    }
  }
  return out;
}
