import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { runCommand } from "../../../adapters/command.js";
import { EngineError } from "../../../engine/engine-error.js";
import { syncDir } from "../disk.js";
import { fsyncDirectory, writeFileDurably } from "../sandbox-record.js";

/**
 * Named snapshots on disk: `<state_dir>/snapshots/<user>/<snapshot id>/` holds `manifest.json`,
 * `disk.ext4` (a copy of the sandbox's own disk: its overlay upper, resolv.conf and hosts) and,
 * for a full snapshot, `checkpoint/` (runsc's image of memory and processes). A snapshot is
 * written under `<id>.tmp` and renamed only once every file is fsynced, so a directory without
 * the suffix is always complete; a restarted vmm removes whatever `*.tmp` a crash left.
 */

export const SNAPSHOT_MANIFEST_VERSION = 1;

export type SnapshotKind = "full" | "filesystem";

/** What a resume needs besides the files; written last, inside the temp dir. */
export interface SnapshotManifest {
  version: 1;
  snapshotId: string;
  kind: SnapshotKind;
  userId: string;
  sourceSandboxId: string;
  sourceName: string;
  createdAt: number;
  image: string;
  /** The image's rootfs the disk's upper sits on: it must still exist at resume. */
  imageRootfs: string;
  cpus: number;
  memoryMb: number;
  pidsLimit: number;
  /** Size of the sandbox's own disk (the image's apparent size), MiB. */
  diskSizeMb: number;
  /** The UTS hostname lives in the checkpointed memory: forks keep it (docs/snapshots.md). */
  hostname: string;
  /**
   * The agent token inside the checkpointed memory (full snapshots only): a restored agent
   * accepts only this one, so forks and rewinds take it over.
   */
  token: string;
  /**
   * Volumes attached at snapshot time: the set of mount points is fixed by the snapshot (its
   * checkpoint cannot be restored with another), and a resume re-attaches them by name.
   */
  volumes: SnapshotVolume[];
  /** Bytes of the snapshot's files (sparse disk counted by its allocated blocks). */
  sizeBytes: number;
}

export interface SnapshotVolume {
  name: string;
  /** Absolute path inside the sandbox. */
  mount: string;
  readOnly: boolean;
}

export interface SnapshotPaths {
  dir: string;
  tmp: string;
  manifest: string;
  disk: string;
  checkpoint: string;
}

const SNAPSHOT_ID = /^[0-9a-f]{16}$/;
const USER_ID = /^[A-Za-z0-9_-]{1,64}$/;

export function newSnapshotId(): string {
  return randomBytes(8).toString("hex");
}

export function snapshotsRoot(stateDir: string): string {
  return join(stateDir, "snapshots");
}

/** The files of snapshot `snapshotId` of `userId`; InvalidArgument for ids that are not ours. */
export function snapshotPaths(root: string, userId: string, snapshotId: string): SnapshotPaths {
  if (!USER_ID.test(userId)) throw new EngineError("invalid_argument", "invalid user id");
  if (!SNAPSHOT_ID.test(snapshotId))
    throw new EngineError(
      "invalid_argument",
      `invalid snapshot id ${JSON.stringify(snapshotId.slice(0, 40))}`,
    );
  const dir = join(root, userId, snapshotId);
  const tmp = `${dir}.tmp`;
  return {
    dir,
    tmp,
    manifest: join(dir, "manifest.json"),
    disk: join(dir, "disk.ext4"),
    checkpoint: join(dir, "checkpoint"),
  };
}

/** The paths of the same files inside the temp dir. */
export function tmpPaths(p: SnapshotPaths): { manifest: string; disk: string; checkpoint: string } {
  return {
    manifest: join(p.tmp, "manifest.json"),
    disk: join(p.tmp, "disk.ext4"),
    checkpoint: join(p.tmp, "checkpoint"),
  };
}

export function readManifest(p: SnapshotPaths): SnapshotManifest {
  if (!existsSync(p.dir)) throw new EngineError("not_found", "the snapshot's files are missing");
  let m: SnapshotManifest;
  try {
    m = JSON.parse(readFileSync(p.manifest, "utf8")) as SnapshotManifest;
  } catch (e) {
    throw new EngineError("failed_precondition", `snapshot manifest unreadable: ${(e as Error).message}`);
  }
  if (m.version !== SNAPSHOT_MANIFEST_VERSION) {
    throw new EngineError(
      "failed_precondition",
      `snapshot manifest version ${String(m.version)} is not supported`,
    );
  }
  if (!existsSync(p.disk))
    throw new EngineError("failed_precondition", "the snapshot's disk image is missing");
  if (m.kind === "full" && !existsSync(join(p.checkpoint, "checkpoint.img"))) {
    throw new EngineError("failed_precondition", "the snapshot's checkpoint image is missing");
  }
  return m;
}

/** Writes the manifest into the temp dir, fsyncs it all, and renames the dir into place. */
export function commitSnapshot(p: SnapshotPaths, manifest: SnapshotManifest): void {
  const t = tmpPaths(p);
  if (existsSync(t.checkpoint)) syncDir(t.checkpoint);
  writeFileDurably(t.manifest, JSON.stringify(manifest, null, 2), 0o600);
  syncDir(p.tmp);
  fsyncDirectory(p.tmp);
  renameSync(p.tmp, p.dir);
  fsyncDirectory(join(p.dir, ".."));
}

/** Copies a (sparse) disk image; reflinks where the filesystem can, and fsyncs the copy. */
export async function copyDiskImage(from: string, to: string): Promise<void> {
  await runCommand("cp", ["--sparse=always", "--reflink=auto", from, to], { timeoutMs: 600_000 });
  await runCommand("sync", [to], { timeoutMs: 120_000 });
}

/** Flushes a mounted filesystem (syncfs), so its image file holds every write made so far. */
export async function syncFilesystem(mountPoint: string): Promise<void> {
  await runCommand("sync", ["-f", mountPoint], { timeoutMs: 120_000 });
}

/** Removes a snapshot: renamed to a temp name first, so a crash mid-removal is swept at start. */
export function removeSnapshotDir(p: SnapshotPaths): boolean {
  if (!existsSync(p.dir)) return false;
  const doomed = `${p.dir}.${Date.now()}.tmp`;
  renameSync(p.dir, doomed);
  fsyncDirectory(join(p.dir, ".."));
  rmSync(doomed, { recursive: true, force: true });
  return true;
}

/** Startup sweep: every `*.tmp` under `<root>/<user>/` is a snapshot cut short (or a removal). */
export function sweepSnapshotTemps(root: string): string[] {
  const removed: string[] = [];
  mkdirSync(root, { recursive: true, mode: 0o700 });
  for (const user of readdirSync(root)) {
    let entries: string[];
    try {
      entries = readdirSync(join(root, user));
    } catch {
      continue;
    }
    for (const e of entries) {
      if (!e.endsWith(".tmp")) continue;
      rmSync(join(root, user, e), { recursive: true, force: true });
      removed.push(`${user}/${e}`);
    }
  }
  return removed;
}
