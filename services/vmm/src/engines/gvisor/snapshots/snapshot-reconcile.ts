import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "@bhatti/runtime";
import { removeSnapshotDir, snapshotPaths } from "./snapshot-files.js";

/** The store's snapshot rows of one user: the directories they name (their `path`). */
export type SnapshotRowPaths = (userId: string) => Promise<Set<string>>;

const SNAPSHOT_DIR = /^[0-9a-f]{16}$/;

/**
 * Removes complete snapshots that no store row names and that are older than `graceMs`: the
 * gateway records a snapshot's row only after the vmm wrote its files, so a gateway (or vmm)
 * crash between the two leaves files nobody can see or delete. The grace keeps a create that is
 * about to insert its row safe. A user whose rows cannot be read is skipped.
 */
export async function reapOrphanSnapshots(options: {
  root: string;
  rowPaths: SnapshotRowPaths;
  graceMs: number;
  now?: number;
  logger?: Logger;
}): Promise<string[]> {
  const { root, rowPaths, graceMs, logger } = options;
  const now = options.now ?? Date.now();
  const reaped: string[] = [];
  if (!existsSync(root)) return reaped;
  for (const userId of readdirSync(root)) {
    const candidates = readdirSync(join(root, userId)).filter((e) => SNAPSHOT_DIR.test(e));
    if (candidates.length === 0) continue;
    let known: Set<string>;
    try {
      known = await rowPaths(userId);
    } catch (e) {
      logger?.debug("snapshot reap skipped", { user: userId, error: (e as Error).message });
      continue;
    }
    for (const id of candidates) {
      const p = snapshotPaths(root, userId, id);
      if (known.has(p.dir)) continue;
      let createdAt = 0;
      try {
        createdAt = (JSON.parse(readFileSync(p.manifest, "utf8")) as { createdAt?: number }).createdAt ?? 0;
      } catch {
        // no readable manifest: a complete dir always has one, so this is debris
      }
      if (now - createdAt < graceMs) continue;
      removeSnapshotDir(p);
      reaped.push(`${userId}/${id}`);
    }
  }
  if (reaped.length > 0) logger?.info("removed snapshots no store row names", { reaped });
  return reaped;
}
