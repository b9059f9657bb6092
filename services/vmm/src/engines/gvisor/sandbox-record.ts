import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { SandboxStatus, SandboxVolumeSpec, ThermalState } from "../../engine/engine.js";
import type { ImageRunscSettings } from "../../adapters/image-runsc-settings.js";

/**
 * What the gvisor engine persists per sandbox (`<sandbox dir>/engine.json`, mode 0600), so a
 * restarted vmm can adopt running sandboxes and restore cold ones with the same address and
 * agent token. Secrets are not in it (they live only in the boot config, which the agent
 * deletes after reading).
 */
export interface GvisorSandboxRecord {
  version: 1;
  id: string;
  name: string;
  image: string;
  imageRootfs: string;
  /** The image's runsc settings at create: its flags go to run, checkpoint and restore. */
  runsc?: ImageRunscSettings;
  cpus: number;
  memoryMb: number;
  pidsLimit: number;
  userId: string;
  hostname: string;
  createdAt: number;
  token: string;
  address: string;
  gateway: string;
  /** The per-user resolver the sandbox's resolv.conf names (absent in records of older versions). */
  dnsServer?: string;
  netnsPath: string;
  status: SandboxStatus;
  thermal: ThermalState;
  thermalSince: number;
  /** How the warm state was entered ("freeze" = cgroup v2, "runsc" = runsc pause). */
  warmBy?: "freeze" | "runsc";
  /** Set while the restore circuit breaker is open. */
  restoreError?: string;
  checkpointBytes?: number;
  /**
   * Volumes bind-mounted into the sandbox: the mount destinations are fixed for its life (a
   * checkpoint cannot be restored with another set), their host mounts are re-acquired by start,
   * adoption and snapshot resume (see volumes/volume-host.ts).
   */
  volumes?: SandboxVolumeSpec[];
}

/** What adoption finds at a sandbox's record path. */
export type RecordProbe =
  | { kind: "ok"; record: GvisorSandboxRecord }
  /** No record file (and no temp file): the create never finished, the record is written last. */
  | { kind: "missing" }
  /** A record (or its temp file) exists but cannot be used: never delete what it describes. */
  | { kind: "unreadable"; reason: string };

export function probeRecord(path: string, expectedId: string): RecordProbe {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") {
      return { kind: "unreadable", reason: (e as Error).message };
    }
    // A temp file without the record: a crash during the first write, after the agent was up.
    try {
      readFileSync(`${path}.tmp`);
      return { kind: "unreadable", reason: "only engine.json.tmp exists" };
    } catch {
      return { kind: "missing" };
    }
  }
  try {
    const r = JSON.parse(text) as GvisorSandboxRecord;
    if (r.version !== 1 || typeof r.id !== "string") {
      return { kind: "unreadable", reason: "not a version 1 record" };
    }
    if (r.id !== expectedId) return { kind: "unreadable", reason: `record names sandbox ${r.id}` };
    return { kind: "ok", record: r };
  } catch (e) {
    return { kind: "unreadable", reason: text.length === 0 ? "empty file" : (e as Error).message };
  }
}

export function readRecord(path: string): GvisorSandboxRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(path, "utf8")) as GvisorSandboxRecord;
    return r.version === 1 && typeof r.id === "string" ? r : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Replaces the record atomically and durably: the temp file is fsynced before the rename and the
 * directory after it, so a power loss leaves either the old record or the new one, never an
 * empty file (finding #10).
 */
export function writeRecord(path: string, record: GvisorSandboxRecord): void {
  writeFileDurably(path, JSON.stringify(record, null, 2), 0o600);
}

/** Writes `path` through `<path>.tmp` with fsync of the file, rename, then fsync of the directory. */
export function writeFileDurably(path: string, content: string, mode: number): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, "w", mode);
  try {
    writeFileSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  fsyncDirectory(dirname(path));
}

/** fsyncs a directory so a rename or create inside it survives a power loss. */
export function fsyncDirectory(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** What a new sandbox's record is made of: its identity and shape, its image, its network. */
export interface NewSandboxRecordInput {
  id: string;
  name: string;
  image: { name: string; rootfs: string; runsc?: ImageRunscSettings | undefined };
  cpus: number;
  memoryMb: number;
  pidsLimit: number;
  userId: string;
  hostname: string;
  net: { address: string; gateway: string; dnsServer: string; netnsPath: string };
  /** The agent token; a fresh random one when absent (a fork keeps its source's). */
  token?: string | undefined;
  volumes?: SandboxVolumeSpec[] | undefined;
}

/**
 * The record of a sandbox that is about to run hot for the first time: the one shape create,
 * create from a template and snapshot resume all write.
 */
export function newRunningRecord(input: NewSandboxRecordInput, now = Date.now()): GvisorSandboxRecord {
  return {
    version: 1,
    id: input.id,
    name: input.name,
    image: input.image.name,
    imageRootfs: input.image.rootfs,
    // The image's runsc settings (e.g. the docker tier's) go to every run, checkpoint and restore.
    ...(input.image.runsc === undefined ? {} : { runsc: input.image.runsc }),
    cpus: input.cpus,
    memoryMb: input.memoryMb,
    pidsLimit: input.pidsLimit,
    userId: input.userId,
    hostname: input.hostname,
    createdAt: now,
    token: input.token ?? randomBytes(16).toString("hex"),
    address: input.net.address,
    gateway: input.net.gateway,
    dnsServer: input.net.dnsServer,
    netnsPath: input.net.netnsPath,
    status: "running",
    thermal: "hot",
    thermalSince: now,
    ...(input.volumes !== undefined && input.volumes.length > 0 ? { volumes: input.volumes } : {}),
  };
}
