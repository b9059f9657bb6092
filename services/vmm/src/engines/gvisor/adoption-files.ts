import { existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
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
