import { rmSync } from "node:fs";
import { join } from "node:path";
import {
  AGENT_MOUNT_POINT,
  AGENT_PACKAGE_LAYOUT,
  type AgentClient,
  createAgentClient,
} from "@bhatti/agent-client";
import { AGENT_CONTROL_PORT, AGENT_FORWARD_PORT } from "@bhatti/agent-protocol";
import { type Logger, crashPoint } from "@bhatti/runtime";
import type { GuestInit } from "../../adapters/agent-launch.js";
import { type SandboxCgroups, createSandboxCgroups } from "../../adapters/cgroups.js";
import type { GuestDialer } from "../../adapters/guest-dialer.js";
import { type ImageRegistry, createImageRegistry } from "../../adapters/image-registry.js";
import { ensureReadOnlyBind } from "../../adapters/read-only-bind.js";
import { type Runsc, createRunsc } from "../../adapters/runsc.js";
import type { SandboxNetwork } from "../../adapters/sandbox-network.js";
import type { AgentEndpoint, EngineEvent, SandboxInfo, ThermalState } from "../../engine/engine.js";
import { EngineError, isEngineError } from "../../engine/engine-error.js";
import type { BundleHost } from "./bundle.js";
import { waitAgentAnswers } from "./agent-answers.js";
import { readLogTail } from "./disk.js";
import { type HostAdmission, createHostAdmission } from "./host-admission.js";
import { type SandboxLayout, sandboxLayout } from "./layout.js";
import { SENTRY_OVERHEAD_MB } from "./oci-spec.js";
import { unmountSandboxFs } from "./sandbox-disk.js";
import { type GvisorSandboxRecord, writeRecord } from "./sandbox-record.js";
import { type VolumeHost, createVolumeHost } from "../../volumes/volume-host.js";

export interface GvisorEngineOptions {
  /** Holds `sandboxes/`, `runsc/` (runsc's --root) and `images/`. */
  stateDir: string;
  runscPath: string;
  /** tini, the reaping parent of each sandbox (default /usr/bin/tini). */
  tiniPath?: string;
  platform: "ptrace" | "systrap";
  /** Parent of every sandbox cgroup ("bhatti"; tests use "bhatti-test/<run>"). */
  cgroupParent: string;
  network: SandboxNetwork;
  dialer: GuestDialer;
  init: GuestInit;
  /** Checkpoint compression (default none). */
  checkpointCompression?: "none" | "flate-best-speed";
  /** Warm = cgroup v2 freeze (default; measured faster) or `runsc pause`. */
  warmMethod?: "freeze" | "runsc";
  /** How long create and restore wait for the agent. */
  readyTimeoutMs?: number;
  /** Overrides `<stateDir>/images`. */
  imagesDir?: string;
  /** Disk of a sandbox created without `diskSizeMb`, MiB (default 4096). */
  defaultDiskSizeMb?: number;
  /** Host memory kept out of sandbox admission, MiB (default 1024). */
  hostMemoryReserveMb?: number;
  /** Free space kept on the state disk by admission and checkpoints, MiB (default 2048). */
  hostDiskReserveMb?: number;
  /** Images whose creates restore a per-image template checkpoint (docs/templates.md); default none. */
  templateImages?: readonly string[];
  /**
   * The pool of ready sandboxes (pool/ready-pool.ts): entries kept at most (0 = no pool), and how
   * long an unclaimed entry is kept. Default: no pool.
   */
  pool?: { size: number; idleMs: number };
  logger?: Logger;
}

/**
 * What the gvisor engine's modules (create, adoption, persist) share: the adapters, the
 * in-memory sandbox table, and the small steps every transition uses.
 */
export interface GvisorContext extends BundleHost {
  readonly options: GvisorEngineOptions;
  readonly runsc: Runsc;
  readonly cgroups: SandboxCgroups;
  readonly images: ImageRegistry;
  readonly admission: HostAdmission;
  readonly sandboxesDir: string;
  readonly warmMethod: "freeze" | "runsc";
  readonly log: Logger | undefined;
  /** The adopted and created sandboxes, by id. */
  readonly sandboxes: Map<string, GvisorSandboxRecord>;
  /** Ids whose create is in flight (not yet in `sandboxes`). */
  readonly pending: Set<string>;
  /** The ready pool's entries (pool/ready-pool.ts): running, frozen, not anyone's sandbox yet. */
  readonly pooled: Map<string, GvisorSandboxRecord>;
  readonly listeners: Set<(e: EngineEvent) => void>;
  /** Host mounts of volumes, refcounted by the sandboxes that run with them. */
  readonly volumes: VolumeHost;
  layoutOf(id: string): SandboxLayout;
  /**
   * Memory limits (with sentry overhead) of the sandboxes that hold RAM: hot and warm. Users'
   * creates and restores leave the ready pool's entries out (frozen, they use a few MiB each and
   * are the first to give way); `withPool` counts them, for the pool's own fills.
   */
  committedMemoryMb(withPool?: boolean): number;
  /** (Re)binds the agent package; serialized, so concurrent creates never stack two binds. */
  ensureAgentPackage(): Promise<void>;
  emit(
    kind: EngineEvent["kind"],
    r: { id: string; thermal: ThermalState },
    durationMs?: number,
    detail?: string,
  ): void;
  /**
   * `emit`, with the listeners (the event feeds, the store sync) called on the next turn of the
   * event loop: the reply of the call that caused the event is written first.
   */
  emitAfterReply(
    kind: EngineEvent["kind"],
    r: { id: string; thermal: ThermalState },
    durationMs?: number,
  ): void;
  infoOf(r: GvisorSandboxRecord): SandboxInfo;
  endpointOf(r: GvisorSandboxRecord): AgentEndpoint;
  mustGet(id: string): GvisorSandboxRecord;
  /** Sets the thermal state (and the status that follows from it) and persists the record. */
  setThermal(r: GvisorSandboxRecord, thermal: ThermalState): void;
  /** An agent client for the sandbox (the caller closes it). */
  agentClientOf(r: GvisorSandboxRecord, pool?: boolean): Promise<AgentClient>;
  /**
   * Resolves once the agent runs a command (`probe` "exec", after a boot) or answers on a fresh
   * connection ("answer", after a restore: waitAgentAnswers); fails early if the sandbox dies.
   */
  waitReady(r: GvisorSandboxRecord, probe?: "exec" | "answer"): Promise<void>;
  /** Kills every process of the sandbox and forgets its runsc container. */
  killSandbox(id: string): Promise<void>;
  /** Best-effort removal of everything a sandbox holds; logs and continues on errors. */
  teardown(id: string, layout: SandboxLayout, keep?: { dir?: boolean }): Promise<void>;
  /** hot → warm (cgroup freeze or runsc pause); no-op unless hot. */
  pause(r: GvisorSandboxRecord): Promise<void>;
  /** warm → hot; no-op unless warm. */
  resume(r: GvisorSandboxRecord): Promise<void>;
}

export function asEngineError(e: unknown, what: string): EngineError {
  return isEngineError(e)
    ? e
    : new EngineError("internal", `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}

export function createGvisorContext(options: GvisorEngineOptions, sandboxesDir: string): GvisorContext {
  const runsc = createRunsc({
    path: options.runscPath,
    tiniPath: options.tiniPath ?? "/usr/bin/tini",
    compression: options.checkpointCompression ?? "none",
    root: join(options.stateDir, "runsc"),
    platform: options.platform,
  });
  const cgroups = createSandboxCgroups({ parent: options.cgroupParent });
  const images = createImageRegistry(options.imagesDir ?? join(options.stateDir, "images"));
  const warmMethod = options.warmMethod ?? "freeze";
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  const log = options.logger;
  const sandboxes = new Map<string, GvisorSandboxRecord>();
  const pooled = new Map<string, GvisorSandboxRecord>();
  const listeners = new Set<(e: EngineEvent) => void>();
  const dispatch = (event: EngineEvent) => {
    for (const l of listeners) {
      try {
        l(event);
      } catch (e) {
        log?.warn("event listener failed", { error: e });
      }
    }
  };
  // Events held back by emitAfterReply, and any emitted after them (order is kept).
  const deferred: EngineEvent[] = [];
  const flushDeferred = () => {
    for (let e = deferred.shift(); e !== undefined; e = deferred.shift()) dispatch(e);
  };
  const admission = createHostAdmission({
    stateDir: options.stateDir,
    memoryReserveMb: options.hostMemoryReserveMb ?? 1024,
    diskReserveMb: options.hostDiskReserveMb ?? 2048,
    ...(log ? { logger: log } : {}),
  });
  // The agent package as sandboxes see it: a read-only, nosuid, nodev bind on the host (#14).
  const agentPackageMount = join(options.stateDir, "agent-ro");
  let agentBind: Promise<void> = Promise.resolve();
  const layoutOf = (id: string): SandboxLayout => sandboxLayout(sandboxesDir, id);

  const ctx: GvisorContext = {
    options,
    init: options.init,
    runsc,
    cgroups,
    images,
    admission,
    sandboxesDir,
    warmMethod,
    log,
    sandboxes,
    pending: new Set<string>(),
    pooled,
    listeners,
    agentPackageMount,
    volumes: createVolumeHost({ stateDir: options.stateDir, ...(log ? { log } : {}) }),
    layoutOf,

    committedMemoryMb: (withPool = false) =>
      [...sandboxes.values(), ...(withPool ? pooled.values() : [])]
        .filter((r) => r.thermal !== "cold")
        .reduce((sum, r) => sum + r.memoryMb + SENTRY_OVERHEAD_MB, 0),

    ensureAgentPackage() {
      const init = options.init;
      if (init.kind !== "agent") return Promise.resolve();
      agentBind = agentBind
        .catch(() => undefined)
        .then(() => ensureReadOnlyBind(init.packageDir, agentPackageMount));
      return agentBind;
    },

    emit(kind, r, durationMs = 0, detail = "") {
      const event: EngineEvent = {
        kind,
        sandboxId: r.id,
        at: Date.now(),
        thermal: r.thermal,
        durationMs,
        detail,
      };
      // Behind a deferred event, in order: a pause right after a thaw must never be seen first.
      if (deferred.length > 0) deferred.push(event);
      else dispatch(event);
    },

    emitAfterReply(kind, r, durationMs = 0) {
      // The event says what was true when it happened, whatever follows before it is sent.
      deferred.push({ kind, sandboxId: r.id, at: Date.now(), thermal: r.thermal, durationMs, detail: "" });
      if (deferred.length === 1) setImmediate(flushDeferred);
    },

    endpointOf: (r) => ({
      host: r.address,
      controlPort: AGENT_CONTROL_PORT,
      forwardPort: AGENT_FORWARD_PORT,
      token: r.token,
    }),

    infoOf(r) {
      const info: SandboxInfo = {
        id: r.id,
        name: r.name,
        image: r.image,
        engine: "gvisor",
        status: r.status,
        thermal: r.thermal,
        thermalSince: r.thermalSince,
        createdAt: r.createdAt,
        cpus: r.cpus,
        memoryMb: r.memoryMb,
        userId: r.userId,
        address: r.address,
        gateway: r.gateway,
        agent: ctx.endpointOf(r),
        engineDetails: {
          runsc_container: r.id,
          netns: r.netnsPath,
          platform: options.platform,
          ...(r.warmBy && r.thermal === "warm" ? { warm_by: r.warmBy } : {}),
          ...(r.checkpointBytes !== undefined && r.thermal === "cold"
            ? { checkpoint_bytes: String(r.checkpointBytes) }
            : {}),
        },
      };
      if (r.restoreError !== undefined) info.restoreError = r.restoreError;
      return info;
    },

    mustGet(id) {
      const r = sandboxes.get(id);
      if (!r) throw new EngineError("not_found", `sandbox ${id} not found`);
      return r;
    },

    setThermal(r, thermal) {
      r.thermal = thermal;
      r.thermalSince = Date.now();
      r.status = thermal === "cold" ? "stopped" : "running";
      writeRecord(layoutOf(r.id).record, r);
    },

    agentClientOf: async (r, pool = false) =>
      createAgentClient({
        control: await options.dialer.endpoint(r.address, AGENT_CONTROL_PORT),
        forward: await options.dialer.endpoint(r.address, AGENT_FORWARD_PORT),
        token: r.token,
        pool: pool ? {} : false,
      }),

    async waitReady(r, probe = "exec") {
      if (options.init.kind === "plain") {
        const s = await runsc.state(r.id);
        if (s?.status !== "running") throw new Error(`sandbox is ${s?.status ?? "gone"} after start`);
        return;
      }
      const client = await ctx.agentClientOf(r);
      const abort = new AbortController();
      const check = setInterval(() => {
        void runsc.state(r.id).then(
          (s) => {
            if (!s || s.status === "stopped")
              abort.abort(new Error("the sandbox exited before its agent answered"));
          },
          () => undefined,
        );
      }, 500);
      try {
        if (probe === "answer")
          await waitAgentAnswers(client, { timeoutMs: readyTimeoutMs, signal: abort.signal });
        else
          await client.waitReady({
            timeoutMs: readyTimeoutMs,
            signal: abort.signal,
            // A binary every sandbox has (the agent package's): images may lack `true` (distroless).
            probeArgv: [`${AGENT_MOUNT_POINT}/${AGENT_PACKAGE_LAYOUT.tini}`, "--version"],
          });
      } catch (e) {
        const tail = readLogTail(layoutOf(r.id).log);
        throw new Error(
          `${abort.signal.aborted ? String(abort.signal.reason) : (e as Error).message}${tail ? `; runsc log: ${tail}` : ""}`,
        );
      } finally {
        clearInterval(check);
        client.close();
      }
    },

    // runsc first (its launcher, a subreaper, reaps the sandbox at once), then whatever is left
    // in the cgroup (the launcher itself, or everything if runsc could not do it).
    async killSandbox(id) {
      if (cgroups.isFrozen(id)) await cgroups.thaw(id).catch(() => undefined);
      try {
        await runsc.delete(id);
      } catch (e) {
        log?.warn("runsc delete failed; killing the cgroup", { sandbox: id, error: e });
        await cgroups.kill(id);
        await runsc.delete(id);
      }
      await cgroups.kill(id);
    },

    async teardown(id, layout, keep = {}) {
      const step = async (what: string, fn: () => Promise<void> | void) => {
        try {
          await fn();
        } catch (e) {
          log?.warn(`release: ${what} failed`, { sandbox: id, error: e });
        }
      };
      await step("runsc delete", () => ctx.killSandbox(id));
      crashPoint("vmm.release.after-kill");
      await step("cgroups", () => cgroups.remove(id));
      await step("volumes", () => ctx.volumes.release(id));
      await step("unmount", () => unmountSandboxFs(layout));
      await step("network detach", () => options.network.detach(id));
      if (!keep.dir) await step("dir", () => rmSync(layout.dir, { recursive: true, force: true }));
    },

    async pause(r) {
      if (r.thermal !== "hot") return;
      const t0 = performance.now();
      if (warmMethod === "freeze") await cgroups.freeze(r.id);
      else await runsc.pause(r.id);
      r.warmBy = warmMethod;
      ctx.setThermal(r, "warm");
      ctx.emit("thermal.pause", r, performance.now() - t0);
    },

    async resume(r) {
      if (r.thermal !== "warm") return;
      const t0 = performance.now();
      if (r.warmBy === "runsc") await runsc.resume(r.id);
      else await cgroups.thaw(r.id);
      delete r.warmBy;
      // In memory only: the record's durable write (two fsyncs, ~7 ms, most of a warm wake) is
      // not needed here because adoption never trusts a record's hot/warm: it reads the cgroup's
      // frozen state and runsc's (adoption.ts classify). The next durable write carries it.
      r.thermal = "hot";
      r.thermalSince = Date.now();
      r.status = "running";
      // Nothing waits for the event; the thaw's caller (a warm wake) waits for the reply.
      ctx.emitAfterReply("thermal.resume", r, performance.now() - t0);
    },
  };
  return ctx;
}
