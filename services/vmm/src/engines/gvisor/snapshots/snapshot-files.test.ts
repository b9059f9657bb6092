import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isEngineError } from "../../../engine/engine-error.js";
import {
  type SnapshotManifest,
  commitSnapshot,
  readManifest,
  removeSnapshotDir,
  snapshotPaths,
  sweepSnapshotTemps,
  tmpPaths,
} from "./snapshot-files.js";
import { reapOrphanSnapshots } from "./snapshot-reconcile.js";

const USER = "0123456789abcdef";
const manifest = (snapshotId: string, createdAt: number): SnapshotManifest => ({
  version: 1,
  snapshotId,
  kind: "filesystem",
  userId: USER,
  sourceSandboxId: "fedcba9876543210",
  sourceName: "src",
  createdAt,
  image: "busybox",
  imageRootfs: "/nonexistent",
  cpus: 1,
  memoryMb: 256,
  pidsLimit: 512,
  diskSizeMb: 64,
  hostname: "src",
  token: "",
  volumes: [],
  sizeBytes: 1,
});

describe("snapshot files", () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "bhatti-test-snapfiles-"));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  /** A snapshot written the way create writes it: files in the temp dir, then the commit. */
  const writeSnapshot = (id: string, createdAt = Date.now()) => {
    const p = snapshotPaths(root, USER, id);
    mkdirSync(p.tmp, { recursive: true });
    writeFileSync(tmpPaths(p).disk, "disk");
    commitSnapshot(p, manifest(id, createdAt));
    return p;
  };

  it("refuses ids that could leave the user's directory", () => {
    for (const [user, id] of [
      [USER, "../../etc"],
      [USER, "0123456789abcdeF"],
      ["../x", "0123456789abcdef"],
      ["", "0123456789abcdef"],
    ] as const) {
      let error: unknown;
      try {
        snapshotPaths(root, user, id);
      } catch (e) {
        error = e;
      }
      expect(isEngineError(error, "invalid_argument"), `${user}/${id}`).toBe(true);
    }
  });

  it("a committed snapshot has its manifest and no temp dir; the manifest reads back", () => {
    const p = writeSnapshot("00000000000000a1");
    expect(existsSync(p.tmp)).toBe(false);
    expect(readFileSync(p.disk, "utf8")).toBe("disk");
    expect(readManifest(p)).toEqual(manifest("00000000000000a1", readManifest(p).createdAt));
  });

  it("a missing snapshot is not_found; a full one without its checkpoint image is failed_precondition", () => {
    const missing = snapshotPaths(root, USER, "00000000000000b2");
    expect(() => readManifest(missing)).toThrow(/missing/);
    const p = writeSnapshot("00000000000000b3");
    writeFileSync(p.manifest, JSON.stringify({ ...manifest("00000000000000b3", 0), kind: "full" }));
    let error: unknown;
    try {
      readManifest(p);
    } catch (e) {
      error = e;
    }
    expect(isEngineError(error, "failed_precondition")).toBe(true);
  });

  it("the start sweep removes temp dirs (an unfinished create, an interrupted removal) and keeps complete ones", () => {
    const kept = writeSnapshot("00000000000000c1");
    const cut = snapshotPaths(root, USER, "00000000000000c2");
    mkdirSync(join(cut.tmp, "checkpoint"), { recursive: true });
    writeFileSync(join(cut.tmp, "checkpoint", "checkpoint.img"), "partial");
    mkdirSync(join(root, USER, "00000000000000c3.1700000000000.tmp"));
    expect(sweepSnapshotTemps(root).sort()).toEqual([
      `${USER}/00000000000000c2.tmp`,
      `${USER}/00000000000000c3.1700000000000.tmp`,
    ]);
    expect(existsSync(kept.manifest)).toBe(true);
    expect(existsSync(cut.tmp)).toBe(false);
  });

  it("remove takes the whole directory", () => {
    const p = writeSnapshot("00000000000000d1");
    expect(removeSnapshotDir(p)).toBe(true);
    expect(existsSync(p.dir)).toBe(false);
    expect(removeSnapshotDir(p)).toBe(false);
  });

  it("orphans (no row names them) are reaped only past the grace; rows and unreadable users are kept", async () => {
    const now = Date.now();
    const named = writeSnapshot("00000000000000e1", now - 60_000);
    const orphanOld = writeSnapshot("00000000000000e2", now - 60_000);
    const orphanNew = writeSnapshot("00000000000000e3", now - 1_000);
    const reaped = await reapOrphanSnapshots({
      root,
      graceMs: 30_000,
      now,
      rowPaths: async () => new Set([named.dir]),
    });
    expect(reaped).toEqual([`${USER}/00000000000000e2`]);
    expect(existsSync(named.dir)).toBe(true);
    expect(existsSync(orphanOld.dir)).toBe(false);
    expect(existsSync(orphanNew.dir)).toBe(true);
    // The store cannot answer: nothing is removed.
    const none = await reapOrphanSnapshots({
      root,
      graceMs: 0,
      now: now + 120_000,
      rowPaths: () => Promise.reject(new Error("store unavailable")),
    });
    expect(none).toEqual([]);
    expect(existsSync(orphanNew.dir)).toBe(true);
  });
});
