import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type AttachmentRecord, createAttachmentFile } from "./attachment-file.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const record = (sandboxId: string): AttachmentRecord => ({
  sandboxId,
  userId: "u",
  name: sandboxId,
  kind: "netns",
  egress: { mode: "allow-all", allowCidrs: [], allowHosts: [] },
});

function fresh() {
  const dir = mkdtempSync(join(tmpdir(), "bhatti-test-attach-"));
  dirs.push(dir);
  return createAttachmentFile(join(dir, "network", "attachments.json"));
}

describe("attachments file", () => {
  it("reads what it saved, and keeps the previous copy as .bak", () => {
    const file = fresh();
    expect(file.load()).toEqual({ records: [], source: "missing", problems: [] });
    file.save([record("a")]);
    expect(existsSync(`${file.path}.bak`)).toBe(false);
    file.save([record("a"), record("b")]);
    expect(file.load().records.map((r) => r.sandboxId)).toEqual(["a", "b"]);
    expect(existsSync(`${file.path}.tmp`)).toBe(false);
    rmSync(file.path);
    expect(file.load()).toMatchObject({ source: "backup", records: [{ sandboxId: "a" }] });
  });

  for (const [what, text] of [
    ["torn", '{"version":1,"sandboxes":[{"sandboxId":"a","us'],
    ["empty", ""],
    ["of another format", '{"version":2,"sandboxes":[]}'],
    ["holding a malformed record", '{"version":1,"sandboxes":[{"sandboxId":1}]}'],
  ] as const) {
    it(`falls back to the backup when the file is ${what}, and reports lost without one`, () => {
      const file = fresh();
      file.save([record("a")]);
      file.save([record("a"), record("b")]);
      writeFileSync(file.path, text);
      const loaded = file.load();
      expect(loaded.source).toBe("backup");
      expect(loaded.records.map((r) => r.sandboxId)).toEqual(["a"]);
      expect(loaded.problems[0]).toContain(file.path);
      rmSync(`${file.path}.bak`);
      expect(file.load()).toMatchObject({ source: "lost", records: [] });
    });
  }
});
