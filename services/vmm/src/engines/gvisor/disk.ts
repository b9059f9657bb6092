import { type Dirent, closeSync, fsyncSync, openSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { readTail } from "../../adapters/runsc.js";

/**
 * File helpers of the engine's sandbox directories (checkpoint durability, sizes, log tails).
 * The per-sandbox loop disk itself is `sandbox-disk.ts`.
 */

/** fsyncs every file of the checkpoint so a host crash cannot leave a torn image (v1 R22). */
export function syncDir(dir: string): void {
  for (const name of readdirSync(dir)) {
    const fd = openSync(join(dir, name), "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}

/** The last lines of the sandbox's runsc log (runsc and early agent output), for errors; reads only the tail. */
export function readLogTail(path: string, max = 2048): string {
  return readTail(path, 0, max).split("\n").slice(-10).join("\n");
}

/** Bytes used by the files under a directory (0 if it does not exist). */
export function dirBytes(dir: string): number {
  let total = 0;
  const walk = (d: string) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        try {
          total += statSync(p).size;
        } catch {
          // raced with removal
        }
      }
    }
  };
  walk(dir);
  return total;
}
