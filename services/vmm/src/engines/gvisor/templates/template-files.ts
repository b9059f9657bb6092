import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { runCommand } from "../../../adapters/command.js";
import { EngineError } from "../../../engine/engine-error.js";
import { syncDir } from "../disk.js";
import { fsyncDirectory, writeFileDurably } from "../sandbox-record.js";

/**
 * Per-image template checkpoints on disk (docs/templates.md):
 * `<state_dir>/templates/<image>/<version>/` holds `manifest.json`, `disk.ext4` (the template
 * sandbox's own disk after boot) and `checkpoint/` (runsc's image of the booted, idle agent).
 * Written under `<version>.tmp` and renamed once every file is fsynced, like a snapshot, so a
 * directory without the suffix is complete. `.work/` (no image name starts with a dot) holds
 * the template sandbox while it boots.
 */

/** Bumped when what a template holds or how it is claimed changes: old templates are rebuilt. */
const TEMPLATE_FORMAT = "1";

export interface TemplateShape {
  cpus: number;
  memoryMb: number;
  diskSizeMb: number;
}

export interface TemplateManifest {
  version: 1;
  image: string;
  imageRootfs: string;
  /** The version key the directory is named after. */
  key: string;
  shape: TemplateShape;
  /** The template agent's token: it accepts exactly one CLAIM_REQ authenticated with it. */
  token: string;
  hostname: string;
  createdAt: number;
  buildMs: number;
}

export interface TemplatePaths {
  dir: string;
  tmp: string;
  manifest: string;
  disk: string;
  checkpoint: string;
}

export function templatesRoot(stateDir: string): string {
  return join(stateDir, "templates");
}

/** Where template sandboxes live while they boot (not under `sandboxes/`: never adopted as a user's). */
export function templateWorkDir(root: string): string {
  return join(root, ".work");
}

function fingerprint(path: string): string {
  try {
    const s = statSync(path);
    return `${path}:${s.size}:${s.mtimeMs}`;
  } catch {
    return `${path}:missing`;
  }
}

/**
 * The version of an image's template: changes with the image (its image.json, written last by
 * every build), the agent package (bundle and Node), runsc and the shape, so any of them
 * changing makes the template stale and rebuilt.
 */
export function templateKey(input: {
  imageDir: string;
  imageRootfs: string;
  agentFiles: readonly string[];
  runscPath: string;
  shape: TemplateShape;
}): string {
  const h = createHash("sha256");
  h.update(TEMPLATE_FORMAT);
  h.update(input.imageRootfs);
  const imageJson = join(input.imageDir, "image.json");
  h.update(fingerprint(imageJson));
  try {
    h.update(readFileSync(imageJson));
  } catch {
    h.update("no image.json");
  }
  for (const f of input.agentFiles) h.update(fingerprint(f));
  h.update(fingerprint(input.runscPath));
  h.update(JSON.stringify(input.shape));
  return h.digest("hex").slice(0, 16);
}

export function templatePaths(root: string, image: string, key: string): TemplatePaths {
  const dir = join(root, image, key);
  return {
    dir,
    tmp: `${dir}.tmp`,
    manifest: join(dir, "manifest.json"),
    disk: join(dir, "disk.ext4"),
    checkpoint: join(dir, "checkpoint"),
  };
}

export function tmpPathsOf(p: TemplatePaths): { manifest: string; disk: string; checkpoint: string } {
  return {
    manifest: join(p.tmp, "manifest.json"),
    disk: join(p.tmp, "disk.ext4"),
    checkpoint: join(p.tmp, "checkpoint"),
  };
}

/** The template's manifest, or undefined if there is none; throws if it is there but unusable. */
export function readTemplate(p: TemplatePaths): TemplateManifest | undefined {
  if (!existsSync(p.dir)) return undefined;
  let m: TemplateManifest;
  try {
    m = JSON.parse(readFileSync(p.manifest, "utf8")) as TemplateManifest;
  } catch (e) {
    throw new EngineError("failed_precondition", `template manifest unreadable: ${(e as Error).message}`);
  }
  if (m.version !== 1 || typeof m.token !== "string" || typeof m.key !== "string")
    throw new EngineError("failed_precondition", "template manifest is not a version 1 manifest");
  if (!existsSync(p.disk))
    throw new EngineError("failed_precondition", "the template's disk image is missing");
  if (!existsSync(join(p.checkpoint, "checkpoint.img")))
    throw new EngineError("failed_precondition", "the template's checkpoint image is missing");
  return m;
}

export function commitTemplate(p: TemplatePaths, m: TemplateManifest): void {
  const t = tmpPathsOf(p);
  syncDir(t.checkpoint);
  writeFileDurably(t.manifest, JSON.stringify(m, null, 2), 0o600);
  syncDir(p.tmp);
  fsyncDirectory(p.tmp);
  renameSync(p.tmp, p.dir);
  fsyncDirectory(join(p.dir, ".."));
}

/** Removes a template (renamed to a temp name first: a crash mid-removal is swept at start). */
export function removeTemplateDir(dir: string): void {
  if (!existsSync(dir)) return;
  const doomed = `${dir}.${Date.now()}.tmp`;
  renameSync(dir, doomed);
  rmSync(doomed, { recursive: true, force: true });
}

/** Removes every version of `image` except `keep` (stale templates after an image or agent change). */
export function removeOtherVersions(root: string, image: string, keep: string): string[] {
  const removed: string[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync(join(root, image));
  } catch {
    return removed;
  }
  for (const e of entries) {
    if (e === keep || e.endsWith(".tmp")) continue;
    removeTemplateDir(join(root, image, e));
    removed.push(`${image}/${e}`);
  }
  return removed;
}

/** Startup sweep: every `*.tmp` under `<root>/<image>/` is a build cut short (or a removal). */
export function sweepTemplateTemps(root: string): string[] {
  const removed: string[] = [];
  mkdirSync(root, { recursive: true, mode: 0o700 });
  for (const image of readdirSync(root)) {
    if (image.startsWith(".")) continue;
    let entries: string[];
    try {
      entries = readdirSync(join(root, image));
    } catch {
      continue;
    }
    for (const e of entries) {
      if (!e.endsWith(".tmp")) continue;
      rmSync(join(root, image, e), { recursive: true, force: true });
      removed.push(`${image}/${e}`);
    }
  }
  return removed;
}

/**
 * Copies a template's disk for a new sandbox: a reflink where the filesystem can, else a sparse
 * copy. Not fsynced: a crash before the sandbox's record is written removes the copy anyway.
 */
export async function copyTemplateDisk(from: string, to: string): Promise<void> {
  await runCommand("cp", ["--sparse=always", "--reflink=auto", from, to], { timeoutMs: 600_000 });
}
