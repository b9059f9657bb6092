import {
  closeSync,
  copyFileSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import type { EgressPolicyInput } from "../domain/egress-policy.js";

/**
 * What the service must remember about a sandbox across restarts that the store's address
 * table does not hold: its kind, DNS name and egress policy. Written before devices are
 * created, so a crash mid-attach leaves a record that reconciliation resolves.
 */
export interface AttachmentRecord {
  sandboxId: string;
  userId: string;
  name: string;
  kind: "netns" | "tap";
  egress: EgressPolicyInput;
}

/**
 * Where the loaded records come from. `file`: the file; `backup`: the file was unreadable
 * and `.bak` (the copy before the last save) was used; `missing`: neither exists (a fresh
 * install, or both lost); `lost`: neither could be read.
 */
export type AttachmentSource = "file" | "backup" | "missing" | "lost";

export interface LoadedAttachments {
  records: AttachmentRecord[];
  source: AttachmentSource;
  /** Why the file (and the backup) could not be used, for the log. */
  problems: string[];
}

export interface AttachmentFile {
  readonly path: string;
  /** Never throws: an unreadable file is reported in `source` and `problems`. */
  load(): LoadedAttachments;
  save(records: Iterable<AttachmentRecord>): void;
}

const isRecord = (r: unknown): r is AttachmentRecord => {
  if (typeof r !== "object" || r === null) return false;
  const o = r as Record<string, unknown>;
  return (
    typeof o["sandboxId"] === "string" &&
    typeof o["userId"] === "string" &&
    typeof o["name"] === "string" &&
    (o["kind"] === "netns" || o["kind"] === "tap") &&
    typeof o["egress"] === "object" &&
    o["egress"] !== null
  );
};

/** The records of one file; undefined if it does not exist; throws if it cannot be used. */
function readRecords(path: string): AttachmentRecord[] | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  const doc = JSON.parse(text) as { version?: unknown; sandboxes?: unknown };
  if (typeof doc !== "object" || doc === null || doc.version !== 1 || !Array.isArray(doc.sandboxes)) {
    throw new Error(`unknown format (version ${String(doc?.version)})`);
  }
  if (!doc.sandboxes.every(isRecord)) throw new Error("a record is malformed");
  return doc.sandboxes;
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function createAttachmentFile(path: string): AttachmentFile {
  const backup = `${path}.bak`;
  return {
    path,
    load() {
      const problems: string[] = [];
      let mainMissing = false;
      try {
        const records = readRecords(path);
        if (records !== undefined) return { records, source: "file", problems };
        mainMissing = true;
      } catch (e) {
        problems.push(`${path}: ${(e as Error).message}`);
      }
      try {
        const records = readRecords(backup);
        if (records !== undefined) {
          if (mainMissing) problems.push(`${path}: missing`);
          return { records, source: "backup", problems };
        }
        if (mainMissing) return { records: [], source: "missing", problems };
        problems.push(`${backup}: missing`);
      } catch (e) {
        problems.push(`${backup}: ${(e as Error).message}`);
      }
      return { records: [], source: "lost", problems };
    },
    save(records) {
      const dir = dirname(path);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const tmp = `${path}.tmp`;
      const fd = openSync(tmp, "w", 0o600);
      try {
        writeSync(fd, `${JSON.stringify({ version: 1, sandboxes: [...records] }, null, 1)}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      // The current file (complete: it was fsynced before its rename) becomes the backup by
      // a hard link, so no data is copied; then the new file replaces it atomically.
      const bakTmp = `${backup}.tmp`;
      rmSync(bakTmp, { force: true });
      try {
        try {
          linkSync(path, bakTmp);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === "ENOENT") throw e; // the first save: nothing to keep
          copyFileSync(path, bakTmp); // a file system without hard links
        }
        renameSync(bakTmp, backup);
      } catch {
        // The backup is a second line of defence: failing to refresh it must not fail the save.
        rmSync(bakTmp, { force: true });
      }
      renameSync(tmp, path);
      fsyncDir(dir);
    },
  };
}
