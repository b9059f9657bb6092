import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { SandboxLayout } from "./layout.js";
import { fsyncDirectory } from "./sandbox-record.js";

/**
 * File-level decisions a restarted vmm makes about what a crash left in a sandbox directory.
 * They never delete data that might belong to a sandbox somebody was given: an unreadable record
 * moves the directory aside (quarantine) and a complete checkpoint left in `checkpoint.tmp` is kept.
 */

/** Where unreadable sandbox directories are moved, under `<state_dir>/sandboxes/`. */
export const QUARANTINE_DIR = ".quarantine";

/** The marker `stop` writes (and fsyncs) into `checkpoint.tmp` once the image is complete on disk. */
export const CHECKPOINT_COMPLETE = ".complete";

/** Moves `<sandboxes>/<id>` to `<sandboxes>/.quarantine/<id>-<ms>` with a note saying why. */
export function quarantineSandboxDir(sandboxesDir: string, id: string, reason: string): string {
  const quarantine = join(sandboxesDir, QUARANTINE_DIR);
  mkdirSync(quarantine, { recursive: true, mode: 0o700 });
  const target = join(quarantine, `${id}-${Date.now()}`);
  renameSync(join(sandboxesDir, id), target);
  writeFileSync(join(target, "QUARANTINED"), `${new Date().toISOString()} ${reason}\n`, { mode: 0o600 });
  fsyncDirectory(quarantine);
  fsyncDirectory(sandboxesDir);
  return target;
}

/** Marks a fully written and fsynced checkpoint image in `checkpoint.tmp` as complete. */
export function markCheckpointComplete(layout: SandboxLayout): void {
  writeFileSync(join(layout.checkpointTmp, CHECKPOINT_COMPLETE), "", { mode: 0o600 });
  fsyncDirectory(layout.checkpointTmp);
}

/** Renames `checkpoint.tmp` over `checkpoint` and makes the rename durable (finding #26). */
export function commitCheckpoint(layout: SandboxLayout): void {
  rmSync(layout.checkpoint, { recursive: true, force: true });
  renameSync(layout.checkpointTmp, layout.checkpoint);
  fsyncDirectory(layout.dir);
}

function hasImage(dir: string): boolean {
  try {
    return statSync(join(dir, "checkpoint.img")).size > 0;
  } catch {
    return false;
  }
}

/** True when `checkpoint.tmp` holds an image that `stop` finished and marked complete. */
export function checkpointTmpComplete(layout: SandboxLayout): boolean {
  return existsSync(join(layout.checkpointTmp, CHECKPOINT_COMPLETE)) && hasImage(layout.checkpointTmp);
}

/** Removes a leftover `checkpoint.tmp` of a sandbox that is still running (a checkpoint cut short). */
export function discardCheckpointTmp(layout: SandboxLayout): void {
  rmSync(layout.checkpointTmp, { recursive: true, force: true });
}

/** Names `discardCheckpoint` gives a checkpoint on its way out: `checkpoint.discard.<ms>`. */
const DISCARD_PREFIX = "checkpoint.discard.";

/**
 * Takes `checkpoint/` out of use at once (a rename) and frees its disk in the background:
 * unlinking a 15 MiB image costs 3–7 ms here, on the reply path of a cold wake. The unique
 * name keeps a later stop's `checkpoint/` clear of an unlink still in flight. A crash before
 * the unlink leaves the directory to `sweepDiscardedCheckpoints`. Resolves when it is freed; never
 * throws (a failure rejects).
 */
export function discardCheckpoint(layout: SandboxLayout): Promise<void> {
  const target = join(layout.dir, `${DISCARD_PREFIX}${Date.now()}.${process.hrtime.bigint()}`);
  try {
    renameSync(layout.checkpoint, target);
  } catch (e) {
    // Never thrown at the caller: the restore it follows succeeded. A checkpoint left beside a
    // running sandbox is replaced by the next stop and removed by adoption.
    return (e as NodeJS.ErrnoException).code === "ENOENT" ? Promise.resolve() : Promise.reject(e);
  }
  return rm(target, { recursive: true, force: true });
}

/** Removes discarded checkpoints a crash left behind (adoption); returns how many. */
export function sweepDiscardedCheckpoints(layout: SandboxLayout): number {
  let names: string[];
  try {
    names = readdirSync(layout.dir).filter((n) => n.startsWith(DISCARD_PREFIX));
  } catch {
    return 0;
  }
  for (const n of names) rmSync(join(layout.dir, n), { recursive: true, force: true });
  return names.length;
}
