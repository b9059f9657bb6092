import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { AgentClient } from "@bhatti/agent-client";
import { isSandboxId } from "@bhatti/proto";
import { crashPoint, createKeyedLock, createSingleFlight, createUndoStack } from "@bhatti/runtime";
import type { SandboxCgroups } from "../../adapters/cgroups.js";
import type { ImageRegistry } from "../../adapters/image-registry.js";
import type { Runsc } from "../../adapters/runsc.js";
import type {
  EnsureHotResult,
  Engine,
  EngineHealth,
  SandboxStats,
  StartOptions,
} from "../../engine/engine.js";
import { EngineError } from "../../engine/engine-error.js";
import { validateSpec } from "../../engine/spec-validation.js";
import { adoptAll } from "./adoption.js";
import { writeBootConfig, writeBundle } from "./bundle.js";
import { dirBytes } from "./disk.js";
import { type GvisorEngineOptions, asEngineError, createGvisorContext } from "./engine-context.js";
import { doStartAdmitted, doStop } from "./persist.js";
import { MAX_DISK_SIZE_MB, MIN_DISK_SIZE_MB, sandboxDiskBytes } from "./sandbox-disk.js";
import { prepareBootDiskAndNetwork } from "./sandbox-prepare.js";
import { newRunningRecord, writeRecord } from "./sandbox-record.js";
import { type SnapshotOps, createSnapshotOps } from "./snapshots/snapshot-ops.js";
import type { VolumeHost } from "../../volumes/volume-host.js";
import { holderOf } from "../../volumes/sandbox-volumes.js";
import { claimPoolEntry } from "./pool/pool-claim.js";
import { type ReadyPool, createReadyPool } from "./pool/ready-pool.js";
import { TemplateUnusableError, createFromTemplate } from "./templates/template-claim.js";
import { type Templates, createTemplates } from "./templates/templates.js";

export type { GvisorEngineOptions } from "./engine-context.js";

export const DEFAULT_DISK_SIZE_MB = 4096;

export interface GvisorEngine extends Engine {
  readonly runsc: Runsc;
  readonly cgroups: SandboxCgroups;
  readonly images: ImageRegistry;
  readonly sandboxesDir: string;
  /** Host side of volumes (images, refcounted mounts); VmmVolumeService serves it. */
  readonly volumes: VolumeHost;
  /** A client for the sandbox's agent through the engine's dialer (the caller closes it). */
  agentClient(id: string): Promise<AgentClient>;
  /** True while a create of `id` is in flight (not yet listed). */
  isCreating(id: string): boolean;
  /** Named snapshots (create, fork, rewind), serialized with the sandbox's other transitions. */
  readonly snapshots: SnapshotOps;
  /**
   * Runs `fn` on the sandbox's merged root filesystem (the host's view of its overlay) while the
   * sandbox is consistent and still: an agent `sync` flushes the guest's dirty pages to the
   * gofer, then the cgroup is frozen until `fn` returns. A warm sandbox is resumed for the sync
   * and paused again after. Cold: FailedPrecondition. Serialized with the sandbox's lifecycle.
   */
  withFrozenRootfs<T>(
    id: string,
    fn: (view: { rootfs: string; image: string; userId: string }) => Promise<T>,
  ): Promise<T>;
  /** Per-image template checkpoints that creates restore instead of booting. */
  readonly templates: Templates;
  /** Sandboxes restored ahead of time that creates claim (pool/ready-pool.ts). */
  readonly pool: ReadyPool;
}

export function createGvisorEngine(options: GvisorEngineOptions): GvisorEngine {
  const sandboxesDir = join(options.stateDir, "sandboxes");
  mkdirSync(sandboxesDir, { recursive: true, mode: 0o700 });
  const ctx = createGvisorContext(options, sandboxesDir);
  const { runsc, cgroups, images, sandboxes, pending, admission, infoOf, mustGet } = ctx;
  const serializer = createKeyedLock();
  const wakes = createSingleFlight<EnsureHotResult>();
  let runscVersion: string | undefined;
  const templates = createTemplates(
    ctx,
    options.templateImages ?? [],
    options.defaultDiskSizeMb ?? DEFAULT_DISK_SIZE_MB,
  );
  const pool = createReadyPool(ctx, templates, options.pool ?? { size: 0, idleMs: 0 });

  const engine: GvisorEngine = {
    kind: "gvisor",
    runsc,
    cgroups,
    images,
    sandboxesDir,
    volumes: ctx.volumes,

    adopt: () => adoptAll(ctx),

    async create(input) {
      const spec = validateSpec(input);
      const image = images.get(spec.image);
      if (!image) throw new EngineError("not_found", `image "${spec.image}" not found`);
      const layout = ctx.layoutOf(spec.id);
      // A pool entry being removed (its reservation ran out) still has its directory.
      await pool.settled(spec.id);
      const reserved = pool.isReserved(spec.id);
      if (sandboxes.has(spec.id) || pending.has(spec.id) || (!reserved && existsSync(layout.dir))) {
        throw new EngineError("already_exists", `sandbox ${spec.id} already exists`);
      }
      const diskSizeMb = spec.diskSizeMb || (options.defaultDiskSizeMb ?? DEFAULT_DISK_SIZE_MB);
      if (!Number.isInteger(diskSizeMb) || diskSizeMb < MIN_DISK_SIZE_MB || diskSizeMb > MAX_DISK_SIZE_MB) {
        if (reserved) await pool.discard(spec.id, "its create was invalid");
        throw new EngineError(
          "invalid_argument",
          `disk_size_mb must be an integer between ${MIN_DISK_SIZE_MB} and ${MAX_DISK_SIZE_MB}, got ${diskSizeMb}`,
        );
      }
      // Taken out of the pool before admission: its memory is counted once, as this create's.
      const taken = pool.take(spec, image, diskSizeMb);
      // Checked synchronously with the id marked pending: concurrent creates count each other.
      let admitted: ReturnType<typeof admission.admit>;
      try {
        admitted = admission.admit(
          spec.id,
          "create",
          { memoryMb: spec.memoryMb, diskMb: diskSizeMb },
          ctx.committedMemoryMb(),
        );
      } catch (e) {
        if (taken !== undefined) await ctx.teardown(spec.id, layout);
        throw e;
      }
      pending.add(spec.id);
      return serializer.run(spec.id, async () => {
        const t0 = performance.now();
        let bootReason: string;
        const undo = createUndoStack();
        try {
          // Fastest path: claim the pool entry reserved for this create. A failed claim (or an
          // entry this create cannot use) is torn down and the create goes on as if there were none.
          let poolNote = "";
          if (taken !== undefined) {
            if ("entry" in taken) {
              try {
                const made = await claimPoolEntry(ctx, taken.entry, spec);
                sandboxes.set(spec.id, made.record);
                ctx.emit("sandbox.created", made.record, performance.now() - t0, made.detail);
                ctx.log?.info("sandbox created", {
                  sandbox: spec.id,
                  path: "pool",
                  ms: Math.round(performance.now() - t0),
                  detail: made.detail,
                });
                pool.wanted(spec.userId, image.name);
                return infoOf(made.record);
              } catch (e) {
                poolNote = `pool entry failed: ${(e as Error).message}; `;
              }
            } else {
              poolNote = `pool entry not usable: ${taken.unusable}; `;
            }
            ctx.log?.warn("pool entry not used", { sandbox: spec.id, reason: poolNote });
            await ctx.teardown(spec.id, layout);
          }
          // Fast path: restore the image's template checkpoint and claim it; any failure there
          // is undone completely and the create boots normally (the template is rebuilt).
          const pick = templates.pick(spec, image, diskSizeMb);
          if ("template" in pick) {
            try {
              const made = await createFromTemplate(ctx, spec, image, pick.template);
              sandboxes.set(spec.id, made.record);
              const detail = `${poolNote}${made.detail}`;
              ctx.emit("sandbox.created", made.record, performance.now() - t0, detail);
              ctx.log?.info("sandbox created", {
                sandbox: spec.id,
                path: "template",
                ms: Math.round(performance.now() - t0),
                detail,
              });
              pool.wanted(spec.userId, image.name);
              return infoOf(made.record);
            } catch (e) {
              bootReason = `template path failed: ${(e as Error).message}`;
              if (e instanceof TemplateUnusableError) templates.discard(pick.template, (e as Error).message);
            }
          } else {
            bootReason = pick.reason;
          }
          const net = await prepareBootDiskAndNetwork(ctx, spec, image, diskSizeMb, undo);
          const tPrepared = performance.now();
          const r = newRunningRecord({ ...spec, image, net });
          undo.push("volumes", () => ctx.volumes.release(spec.id));
          await ctx.volumes.acquire(holderOf(r));
          writeBootConfig(r, spec, image.user, layout, image.runConfig, image.init);
          writeBundle(r, layout, ctx);
          undo.push("cgroups", () => {
            crashPoint("vmm.release.after-kill");
            return cgroups.remove(spec.id);
          });
          const procs = cgroups.ensureUnified(spec.id);
          undo.push("runsc delete", () => ctx.killSandbox(spec.id));
          await runsc.run(spec.id, layout.bundle, {
            cgroupProcs: [procs],
            logFile: layout.log,
            ...(r.runsc === undefined ? {} : { flags: r.runsc.flags }),
          });
          crashPoint("vmm.create.after-runsc-run");
          const tStarted = performance.now();
          await ctx.waitReady(r);
          const tReady = performance.now();
          // The agent has read the boot config (secrets); make sure it is gone from disk.
          rmSync(layout.bootConfig, { force: true });
          crashPoint("vmm.create.before-write-record");
          writeRecord(layout.record, r);
          crashPoint("vmm.create.after-write-record");
          undo.commit();
          sandboxes.set(r.id, r);
          const detail = `${poolNote}boot (${bootReason}): prepare ${(tPrepared - t0).toFixed(0)} ms, runsc run ${(tStarted - tPrepared).toFixed(0)} ms, agent ready ${(tReady - tStarted).toFixed(0)} ms`;
          ctx.emit("sandbox.created", r, performance.now() - t0, detail);
          ctx.log?.info("sandbox created", { sandbox: spec.id, path: "boot", detail });
          return infoOf(r);
        } catch (e) {
          for (const f of await undo.rollback()) {
            ctx.log?.warn(`release: ${f.what} failed`, { sandbox: spec.id, error: f.error });
          }
          throw asEngineError(e, `create sandbox ${spec.id}`);
        } finally {
          pending.delete(spec.id);
          admitted.release();
          // The pool fills only between creates: now may be such a time.
          pool.kick();
        }
      });
    },

    reservePooled: (request) => pool.reserve(request),
    releasePooled: (id) => pool.release(id),

    destroy(id) {
      if (!isSandboxId(id)) return Promise.resolve(false);
      return serializer.run(id, async () => {
        // An id reserved from the pool whose create never came (the gateway rolled it back).
        await pool.discard(id, "destroyed before its create");
        const r = sandboxes.get(id);
        sandboxes.delete(id);
        const layout = ctx.layoutOf(id);
        const existed = r !== undefined || existsSync(layout.dir);
        if (!existed) return false;
        const t0 = performance.now();
        await ctx.teardown(id, layout);
        if (r) ctx.emit("sandbox.destroyed", r, performance.now() - t0);
        return true;
      });
    },

    pause: (id) =>
      serializer.run(id, async () => {
        const r = mustGet(id);
        try {
          await ctx.pause(r);
        } catch (e) {
          throw asEngineError(e, `pause ${id}`);
        }
        return infoOf(r);
      }),

    resume: (id) =>
      serializer.run(id, async () => {
        const r = mustGet(id);
        if (r.thermal === "cold") {
          throw new EngineError("failed_precondition", `sandbox ${id} is cold; start it instead`);
        }
        try {
          await ctx.resume(r);
        } catch (e) {
          throw asEngineError(e, `resume ${id}`);
        }
        return infoOf(r);
      }),

    stop: (id, stopOptions = {}) =>
      serializer.run(id, async () => {
        const r = mustGet(id);
        // Decided in the same turn of the serializer as a thaw would be: a thaw that came
        // first has a command on its way to the agent, which a checkpoint would cut off.
        if (stopOptions.onlyIfWarm === true && r.thermal === "hot") return infoOf(r);
        try {
          await doStop(ctx, r);
        } catch (e) {
          throw asEngineError(e, `stop ${id}`);
        }
        return infoOf(r);
      }),

    start: (id, startOptions: StartOptions = {}) =>
      serializer.run(id, async () => {
        const r = mustGet(id);
        await doStartAdmitted(ctx, r, startOptions.force === true);
        return infoOf(r);
      }),

    ensureHot(id, ensureOptions = {}) {
      const r0 = sandboxes.get(id);
      // Only an idle sandbox answers at once: a stop runs its sandbox again (hot) to quiesce it
      // before the checkpoint, and a caller told "hot" then would dial an agent about to be
      // paused and killed (reset or hung). Behind a transition, wait for it and wake after.
      if (r0?.thermal === "hot" && !serializer.busy(id))
        return Promise.resolve({ info: infoOf(r0), from: "hot", wakeMs: 0 });
      const warmOnly = ensureOptions.warmOnly === true;
      // A thaw-only call never shares a full wake's flight (nor the reverse): a wake must not
      // be refused because a thaw-only call for the same sandbox happened to start first.
      return wakes.do(warmOnly ? `${id}\0warm-only` : id, () =>
        serializer.run(id, async () => {
          const r = mustGet(id);
          const from = r.thermal;
          if (from === "cold" && warmOnly) {
            throw new EngineError("failed_precondition", `sandbox ${id} is cold; a thaw cannot wake it`);
          }
          const t0 = performance.now();
          if (from === "warm") await ctx.resume(r);
          else if (from === "cold") await doStartAdmitted(ctx, r, false);
          return { info: infoOf(r), from, wakeMs: from === "hot" ? 0 : performance.now() - t0 };
        }),
      );
    },

    status(id) {
      const r = sandboxes.get(id);
      return r ? infoOf(r) : undefined;
    },

    list: () => [...sandboxes.values()].map(infoOf),

    async stats(id) {
      const r = mustGet(id);
      const layout = ctx.layoutOf(id);
      const disk =
        (sandboxDiskBytes(layout) ?? dirBytes(layout.upper)) +
        (r.thermal === "cold" ? dirBytes(layout.checkpoint) : 0);
      if (r.thermal === "cold") {
        return {
          thermal: r.thermal,
          memoryBytes: 0,
          memoryLimitBytes: 0,
          cpuUsageNs: 0,
          tasks: 0,
          diskBytes: disk,
        };
      }
      const s = cgroups.stats(id);
      return { thermal: r.thermal, ...s, diskBytes: disk } satisfies SandboxStats;
    },

    agentEndpoint: (id) => ctx.endpointOf(mustGet(id)),

    agentClient: (id) => ctx.agentClientOf(mustGet(id), true),

    isCreating: (id) => pending.has(id),

    snapshots: createSnapshotOps(ctx, serializer),
    withFrozenRootfs: (id, fn) =>
      serializer.run(id, async () => {
        const r = mustGet(id);
        if (r.thermal === "cold") {
          throw new EngineError("failed_precondition", `sandbox ${id} is stopped — start it first`);
        }
        const wasWarm = r.thermal === "warm";
        if (wasWarm) await ctx.resume(r);
        try {
          const agent = await ctx.agentClientOf(r);
          try {
            // The sandbox's own `sync` (an image without one, e.g. distroless, only gets the freeze).
            const s = await agent.exec(["sync"], { root: true, timeoutMs: 60_000 }).catch((e: Error) => e);
            if (s instanceof Error || s.exitCode !== 0) {
              ctx.log?.warn("sync before freezing failed", {
                sandbox: id,
                error: s instanceof Error ? s.message : s.stderr.toString().slice(0, 200),
              });
            }
          } finally {
            agent.close();
          }
          await cgroups.freeze(id);
          try {
            return await fn({ rootfs: ctx.layoutOf(id).rootfs, image: r.image, userId: r.userId });
          } finally {
            await cgroups.thaw(id);
          }
        } finally {
          if (wasWarm) await ctx.pause(r);
        }
      }),

    templates,
    pool,

    async health(): Promise<EngineHealth> {
      const facts: Record<string, string> = {
        engine: "gvisor",
        runsc_path: runsc.path,
        runsc_platform: runsc.platform,
        warm_method: ctx.warmMethod,
        guest_init: options.init.kind,
        images: images
          .list()
          .map((i) => i.name)
          .join(","),
        sandboxes: String(sandboxes.size),
        templates: templates.describe(),
        pool: pool.describe(),
      };
      try {
        runscVersion ??= await runsc.version();
        facts["runsc_version"] = runscVersion;
      } catch (e) {
        return { ready: false, detail: `runsc unusable: ${(e as Error).message}`, facts };
      }
      const net = await options.network.health();
      facts["network"] = net.detail;
      if (!net.ready) return { ready: false, detail: `network: ${net.detail}`, facts };
      return { ready: true, detail: `runsc ${runscVersion} (${runsc.platform})`, facts };
    },

    onEvent(listener) {
      ctx.listeners.add(listener);
      return () => ctx.listeners.delete(listener);
    },

    async close() {
      // Entries are nobody's sandboxes: removed, never left running for the next start.
      await pool.close();
      await templates.close();
      ctx.listeners.clear();
    },
  };
  return engine;
}
