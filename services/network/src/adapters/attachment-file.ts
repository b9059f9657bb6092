import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
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

export interface AttachmentFile {
  readonly path: string;
  load(): AttachmentRecord[];
  save(records: Iterable<AttachmentRecord>): void;
}

export function createAttachmentFile(path: string): AttachmentFile {
  return {
    path,
    load() {
      let text: string;
      try {
        text = readFileSync(path, "utf8");
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
        throw e;
      }
      const doc = JSON.parse(text) as { version: number; sandboxes: AttachmentRecord[] };
      if (doc.version !== 1 || !Array.isArray(doc.sandboxes)) {
        throw new Error(`${path}: unknown format (version ${String(doc.version)})`);
      }
      return doc.sandboxes;
    },
    save(records) {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      const tmp = `${path}.tmp`;
      writeFileSync(tmp, `${JSON.stringify({ version: 1, sandboxes: [...records] }, null, 1)}\n`, {
        mode: 0o600,
      });
      renameSync(tmp, path);
    },
  };
}
