import { existsSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { AGENT_CONTROL_PORT } from "@bhatti/agent-protocol";
import { type KeyedLock, crashPoint, createUndoStack } from "@bhatti/runtime";
import type { SandboxInfo, SandboxSpec, SandboxVolumeSpec } from "../../../engine/engine.js";
import { EngineError } from "../../../engine/engine-error.js";
import { holderOf, volumesForRestore } from "../../../volumes/sandbox-volumes.js";
import { writeBootConfig, writeBundle } from "../bundle.js";
import { quiesceForCheckpoint } from "../checkpoint-quiesce.js";
import { dirBytes } from "../disk.js";
import { type GvisorContext, asEngineError } from "../engine-context.js";
import type { SandboxLayout } from "../layout.js";
import { mountSandboxFs, unmountSandboxFs } from "../sandbox-disk.js";
import { type GvisorSandboxRecord, newRunningRecord, writeRecord } from "../sandbox-record.js";
import {
  type SnapshotKind,
  type SnapshotManifest,
  type SnapshotPaths,
  type SnapshotVolume,
  commitSnapshot,
  copyDiskImage,
  newSnapshotId,
  readManifest,
  removeSnapshotDir,
  snapshotPaths,
  snapshotsRoot,
  sweepSnapshotTemps,
  syncFilesystem,
  tmpPaths,
} from "./snapshot-files.js";

export interface SnapshotCreated {
  snapshotId: string;
  path: string;
  manifest: SnapshotManifest;
  /** How long the sandbox's processes were stopped (pause → resume). */
  pausedMs: number;
  totalMs: number;
}

export interface ResumeTarget {
  /** The new sandbox's id (16 hex, chosen by the caller) and name. */
  id: string;
  name: string;
  userId: string;
  /** The snapshot's volumes as the gateway attached them to the new sandbox (by name, with ids). */
  volumes: readonly SandboxVolumeSpec[];
}

/** Named snapshots of the gvisor engine: create, resume into a new sandbox (fork), rewind, delete. */
export interface SnapshotOps {
  readonly root: string;
  /** Removes what a crash left (`*.tmp`); call once at start. */
  sweep(): string[];
  create(sandboxId: string, userId: string, kind: SnapshotKind): Promise<SnapshotCreated>;
  resumeNew(userId: string, snapshotId: string, target: ResumeTarget): Promise<SandboxInfo>;
  /** `volumes`: the snapshot's volumes as now attached to the sandbox; they replace its own. */
  rewind(
    userId: string,
    snapshotId: string,
    sandboxId: string,
    volumes: readonly SandboxVolumeSpec[],
  ): Promise<SandboxInfo>;
  remove(userId: string, snapshotId: string): boolean;
}

const MiB = 1024 * 1024;

/** The volumes a sandbox runs with, by name (volume ids are resolved again on resume). */
function recordVolumes(r: GvisorSandboxRecord): SnapshotVolume[] {
  return (r.volumes ?? []).map((v) => ({ name: v.name, mount: v.mount, readOnly: v.readOnly }));
}

function allocatedBytes(path: string): number {
  try {
    return statSync(path).blocks * 512;
  } catch {
    return 0;
  }
}

/**
 * Built by the engine with its per-sandbox serializer, so a snapshot never races a stop, a
 * pause or a destroy of the same sandbox.
 */
export function createSnapshotOps(ctx: GvisorContext, serializer: KeyedLock): SnapshotOps {
  const { runsc, cgroups, options, log, sandboxes, pending, images } = ctx;
  const root = snapshotsRoot(options.stateDir);

  /** The image the snapshot's disk sits on, which must be the same directory as then. */
  const imageOf = (m: SnapshotManifest) => {
    const image = images.get(m.image);
    if (!image || image.rootfs !== m.imageRootfs) {
      throw new EngineError(
        "failed_precondition",
        `image "${m.image}" the snapshot was taken on is no longer installed`,
      );
    }
    return image;
  };

  const manifestOf = (userId: string, snapshotId: string): { p: SnapshotPaths; m: SnapshotManifest } => {
    const p = snapshotPaths(root, userId, snapshotId);
    const m = readManifest(p);
    if (m.userId !== userId) throw new EngineError("not_found", "snapshot not found");
    return { p, m };
  };

  /** Starts the sandbox's processes from the snapshot: restore (full) or a fresh boot (filesystem). */
  const launch = async (
    r: GvisorSandboxRecord,
    layout: SandboxLayout,
    p: SnapshotPaths,
    m: SnapshotManifest,
  ) => {
    const procs = cgroups.ensureUnified(r.id);
    if (m.kind === "full") {
      writeBundle(r, layout, ctx);
      await runsc.restore(r.id, layout.bundle, p.checkpoint, {
        cgroupProcs: [procs],
        logFile: layout.log,
        timeoutMs: 120_000,
        ...(r.runsc === undefined ? {} : { flags: r.runsc.flags }),
      });
    } else {
      const image = imageOf(m);
      mkdirSync(layout.boot, { recursive: true, mode: 0o700 });
      // A fresh boot: the spec's env, secrets and files are never persisted, so the boot has
      // none (the files written at the original's create are in the disk's upper already).
      const spec: SandboxSpec = {
        id: r.id,
        name: r.name,
        image: r.image,
        cpus: r.cpus,
        memoryMb: r.memoryMb,
        pidsLimit: r.pidsLimit,
        env: {},
        secrets: {},
        files: [],
        hostname: r.hostname,
        userId: r.userId,
      };
      writeBootConfig(r, spec, image.user, layout, image.runConfig, image.init);
      writeBundle(r, layout, ctx);
      await runsc.run(r.id, layout.bundle, {
        cgroupProcs: [procs],
        logFile: layout.log,
        ...(r.runsc === undefined ? {} : { flags: r.runsc.flags }),
      });
    }
    await ctx.waitReady(r);
    rmSync(layout.bootConfig, { force: true });
  };

  return {
    root,

    sweep: () => sweepSnapshotTemps(root),

    create(sandboxId, userId, kind) {
      return serializer.run(sandboxId, async () => {
        const r = ctx.mustGet(sandboxId);
        if (r.userId !== userId) throw new EngineError("not_found", `sandbox ${sandboxId} not found`);
        if (r.thermal === "cold") {
          throw new EngineError("failed_precondition", `sandbox ${sandboxId} is stopped; start it first`);
        }
        const layout = ctx.layoutOf(sandboxId);
        if (layout.legacyDisk) {
          throw new EngineError(
            "failed_precondition",
            `sandbox ${sandboxId} predates per-sandbox disks and cannot be snapshotted`,
          );
        }
        if (kind === "full") ctx.admission.checkCheckpointSpace(sandboxId, r.memoryMb);
        const snapshotId = newSnapshotId();
        const p = snapshotPaths(root, userId, snapshotId);
        const t = tmpPaths(p);
        const t0 = performance.now();
        mkdirSync(dirname(p.dir), { recursive: true, mode: 0o700 });
        mkdirSync(p.tmp, { mode: 0o700 });
        let paused = false;
        let pausedAt = 0;
        let pausedMs = 0;
        const resumeIfPaused = async () => {
          if (!paused) return;
          // Only resume what we paused: a runsc resume of a running container fails, harmlessly.
          if ((await runsc.state(sandboxId).catch(() => undefined))?.status === "paused")
            await runsc.resume(sandboxId);
          paused = false;
          pausedMs = performance.now() - pausedAt;
        };
        try {
          await ctx.resume(r);
          if (kind === "full") {
            // Resets host connections and leaves the container paused by runsc.
            await quiesceForCheckpoint({
              id: sandboxId,
              dialer: options.dialer,
              runsc,
              host: r.address,
              controlPort: AGENT_CONTROL_PORT,
              agentToken: options.init.kind === "agent" ? r.token : undefined,
              timeoutMs: 5_000,
              log,
            });
          } else {
            await runsc.pause(sandboxId);
          }
          paused = true;
          pausedAt = performance.now();
          if (kind === "full") {
            mkdirSync(t.checkpoint, { mode: 0o700 });
            // The container stays paused, so the disk copy below matches the memory image.
            await runsc.checkpoint(sandboxId, t.checkpoint, {
              leaveRunning: true,
              ...(r.runsc === undefined ? {} : { flags: r.runsc.flags }),
            });
            if (allocatedBytes(join(t.checkpoint, "checkpoint.img")) === 0)
              throw new Error("checkpoint image is missing or empty");
            crashPoint("vmm.snapshot.after-checkpoint");
          }
          await syncFilesystem(layout.diskMount);
          await copyDiskImage(layout.diskImage, t.disk);
          crashPoint("vmm.snapshot.after-copy");
          await resumeIfPaused();
          const manifest: SnapshotManifest = {
            version: 1,
            snapshotId,
            kind,
            userId,
            sourceSandboxId: sandboxId,
            sourceName: r.name,
            createdAt: Date.now(),
            image: r.image,
            imageRootfs: r.imageRootfs,
            cpus: r.cpus,
            memoryMb: r.memoryMb,
            pidsLimit: r.pidsLimit,
            diskSizeMb: Math.round(statSync(layout.diskImage).size / MiB),
            hostname: r.hostname,
            token: kind === "full" ? r.token : "",
            volumes: recordVolumes(r),
            sizeBytes: dirBytes(t.checkpoint) + allocatedBytes(t.disk),
          };
          crashPoint("vmm.snapshot.before-commit");
          commitSnapshot(p, manifest);
          crashPoint("vmm.snapshot.after-commit");
          log?.info("snapshot created", {
            sandbox: sandboxId,
            snapshot: snapshotId,
            kind,
            paused_ms: Math.round(pausedMs),
            size_mb: Math.round(manifest.sizeBytes / MiB),
          });
          return { snapshotId, path: p.dir, manifest, pausedMs, totalMs: performance.now() - t0 };
        } catch (e) {
          rmSync(p.tmp, { recursive: true, force: true });
          // A failed snapshot never harms the sandbox: it ends running as before.
          await resumeIfPaused().catch((re: unknown) =>
            log?.error("resume after a failed snapshot failed", { sandbox: sandboxId, error: re }),
          );
          throw asEngineError(e, `snapshot of ${sandboxId}`);
        }
      });
    },

    resumeNew(userId, snapshotId, target) {
      const { p, m } = manifestOf(userId, snapshotId);
      const image = imageOf(m);
      // Re-attached by name at the recorded mount points, before anything is made.
      const volumes = volumesForRestore(m.volumes, target.volumes);
      const id = target.id;
      const layout = ctx.layoutOf(id);
      if (sandboxes.has(id) || pending.has(id) || existsSync(layout.dir)) {
        throw new EngineError("already_exists", `sandbox ${id} already exists`);
      }
      const admitted = ctx.admission.admit(
        id,
        "restore",
        { memoryMb: m.memoryMb, diskMb: Math.ceil(allocatedBytes(p.disk) / MiB) },
        ctx.committedMemoryMb(),
      );
      pending.add(id);
      return serializer.run(id, async () => {
        const undo = createUndoStack();
        const t0 = performance.now();
        try {
          mkdirSync(layout.dir, { recursive: true, mode: 0o700 });
          undo.push("dir", () => rmSync(layout.dir, { recursive: true, force: true }));
          mkdirSync(layout.boot, { recursive: true, mode: 0o700 });
          undo.push("network detach", () => options.network.detach(id));
          undo.push("unmount", () => unmountSandboxFs(layout));
          const [, net] = await Promise.all([
            ctx
              .ensureAgentPackage()
              .then(() => copyDiskImage(p.disk, layout.diskImage))
              .then(() => mountSandboxFs(layout, image.rootfs)),
            options.network.attach({ sandboxId: id, userId, sandboxName: target.name }),
          ]);
          const r = newRunningRecord({
            id,
            name: target.name,
            // The image's runsc settings (e.g. the docker tier's) apply to the fork as to its source.
            image: { name: m.image, rootfs: m.imageRootfs, runsc: image.runsc },
            cpus: m.cpus,
            memoryMb: m.memoryMb,
            pidsLimit: m.pidsLimit,
            userId,
            hostname: m.hostname,
            net,
            token: m.kind === "full" ? m.token : undefined,
            volumes,
          });
          // Their host mounts are the sources of the bundle's binds (launch writes it).
          undo.push("volumes", () => ctx.volumes.release(id));
          await ctx.volumes.acquire(holderOf(r));
          undo.push("cgroups", () => cgroups.remove(id));
          undo.push("runsc delete", () => ctx.killSandbox(id));
          crashPoint("vmm.snapshot-resume.before-launch");
          await launch(r, layout, p, m);
          writeRecord(layout.record, r);
          undo.commit();
          sandboxes.set(id, r);
          ctx.emit("sandbox.created", r, performance.now() - t0, `resumed from snapshot ${snapshotId}`);
          return ctx.infoOf(r);
        } catch (e) {
          for (const f of await undo.rollback()) {
            log?.warn(`release: ${f.what} failed`, { sandbox: id, error: f.error });
          }
          throw asEngineError(e, `resume snapshot ${snapshotId} into ${id}`);
        } finally {
          pending.delete(id);
          admitted.release();
        }
      });
    },

    rewind(userId, snapshotId, sandboxId, resolved) {
      return serializer.run(sandboxId, async () => {
        const r = ctx.mustGet(sandboxId);
        if (r.userId !== userId) throw new EngineError("not_found", `sandbox ${sandboxId} not found`);
        const { p, m } = manifestOf(userId, snapshotId);
        imageOf(m);
        const volumes = volumesForRestore(m.volumes, resolved);
        if (
          m.image !== r.image ||
          m.imageRootfs !== r.imageRootfs ||
          m.memoryMb !== r.memoryMb ||
          m.cpus !== r.cpus
        ) {
          throw new EngineError(
            "failed_precondition",
            `snapshot is of image ${m.image} with ${m.cpus} cpus and ${m.memoryMb} MiB; sandbox ${r.name} has ${r.image}, ${r.cpus}, ${r.memoryMb} MiB`,
          );
        }
        const layout = ctx.layoutOf(sandboxId);
        if (layout.legacyDisk) {
          throw new EngineError("failed_precondition", `sandbox ${sandboxId} predates per-sandbox disks`);
        }
        const t0 = performance.now();
        // Copied before anything is stopped: a failed copy leaves the sandbox as it was.
        const staged = `${layout.diskImage}.rewind`;
        const ownVolumes = r.volumes;
        rmSync(staged, { force: true });
        try {
          await copyDiskImage(p.disk, staged);
        } catch (e) {
          rmSync(staged, { force: true });
          throw asEngineError(e, `rewind ${sandboxId}`);
        }
        try {
          await ctx.killSandbox(sandboxId);
          crashPoint("vmm.snapshot-rewind.after-kill");
          // The mount set becomes the snapshot's: its own volumes' holds go with the container.
          await ctx.volumes.release(sandboxId);
          if (volumes.length > 0) r.volumes = volumes;
          else delete r.volumes;
          await unmountSandboxFs(layout);
          rmSync(layout.checkpoint, { recursive: true, force: true });
          rmSync(layout.checkpointTmp, { recursive: true, force: true });
          renameSync(staged, layout.diskImage);
          delete r.checkpointBytes;
          delete r.restoreError;
          delete r.warmBy;
          if (m.kind === "full") {
            r.token = m.token;
            r.hostname = m.hostname;
          }
          await mountSandboxFs(layout, r.imageRootfs);
          const net = await options.network.attach({
            sandboxId,
            userId,
            sandboxName: r.name,
            requestedAddress: r.address,
          });
          if (net.address !== r.address)
            throw new Error(`network gave address ${net.address}, expected ${r.address}`);
          await ctx.volumes.acquire(holderOf(r));
          await launch(r, layout, p, m);
        } catch (e) {
          rmSync(staged, { force: true });
          await ctx.killSandbox(sandboxId).catch(() => undefined);
          await ctx.volumes.release(sandboxId).catch(() => undefined);
          // The gateway puts the store's attachments back to the sandbox's own; so does the record.
          if (ownVolumes !== undefined) r.volumes = ownVolumes;
          else delete r.volumes;
          r.status = "unknown";
          r.restoreError = `rewind to snapshot ${snapshotId} failed: ${(e as Error).message}`;
          writeRecord(layout.record, r);
          throw asEngineError(e, `rewind ${sandboxId}`);
        }
        ctx.setThermal(r, "hot");
        ctx.emit("thermal.restore", r, performance.now() - t0, `rewound to snapshot ${snapshotId}`);
        return ctx.infoOf(r);
      });
    },

    remove: (userId, snapshotId) => removeSnapshotDir(snapshotPaths(root, userId, snapshotId)),
  };
}
