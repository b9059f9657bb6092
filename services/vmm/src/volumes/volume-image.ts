import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, rmSync, statSync } from "node:fs";
import { runCommand } from "../adapters/command.js";

/**
 * A volume's image file: a sparse ext4 filesystem whose size is the volume's quota (writes past
 * it get ENOSPC inside the sandbox, phase2-notes §3). Its root directory belongs to uid/gid 1000,
 * the sandbox user, so a fresh volume is writable without sudo.
 */

/** ext4 with a journal needs a few MiB of its own. */
export const MIN_VOLUME_MB = 8;
export const MAX_VOLUME_MB = 16 * 1024 * 1024;

/** Creates the sparse image and its filesystem; the file must not exist. */
export async function createVolumeImage(path: string, sizeMb: number): Promise<void> {
  const fd = openSync(path, "wx", 0o600);
  try {
    ftruncateSync(fd, sizeMb * 1024 * 1024);
  } finally {
    closeSync(fd);
  }
  try {
    // -m 0: no blocks reserved for root. Lazy init: the file is new and sparse (zeros already).
    await runCommand(
      "mkfs.ext4",
      [
        "-q",
        "-F",
        "-m",
        "0",
        "-E",
        "root_owner=1000:1000,nodiscard,lazy_itable_init=1,lazy_journal_init=1",
        path,
      ],
      { timeoutMs: 120_000 },
    );
  } catch (e) {
    rmSync(path, { force: true });
    throw e;
  }
}

/**
 * Grows an unmounted image to `sizeMb` (online grow is refused on this host, phase2-notes §3):
 * e2fsck first (resize2fs insists on a freshly checked filesystem), then the file, then the fs.
 * Safe to repeat: a file already at the size is only checked and resized again.
 */
export async function growVolumeImage(path: string, sizeMb: number): Promise<void> {
  const bytes = sizeMb * 1024 * 1024;
  if (statSync(path).size > bytes)
    throw new Error(`volume image is larger than ${sizeMb} MiB; volumes only grow`);
  await fsck(path);
  const fd = openSync(path, "r+");
  try {
    ftruncateSync(fd, bytes);
  } finally {
    closeSync(fd);
  }
  await runCommand("resize2fs", [path], { timeoutMs: 600_000 });
}

/** e2fsck -f -y; exit 1 (errors corrected) is success, like 0. */
async function fsck(path: string): Promise<void> {
  try {
    await runCommand("e2fsck", ["-f", "-y", path], { timeoutMs: 600_000 });
  } catch (e) {
    if ((e as { exitCode?: number | null }).exitCode !== 1) throw e;
  }
}

export function deleteVolumeImage(path: string): boolean {
  const existed = existsSync(path);
  rmSync(path, { force: true });
  return existed;
}

export function ensureDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}
