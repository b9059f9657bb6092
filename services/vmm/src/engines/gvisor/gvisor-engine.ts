import { randomBytes } from "node:crypto";
import {
  type Dirent,
  closeSync,
  existsSync,
  fsyncSync,
  lstatSync,
  openSync,
  mkdirSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { type AgentBootConfig, DEFAULT_SUDO_SOCKET } from "@bhatti/agent-protocol";
import { type Logger, crashPoint } from "@bhatti/runtime";
import { type AgentClient, createAgentClient } from "@bhatti/agent-client";
import {
  AGENT_MOUNT_POINT,
  BOOT_CONFIG_MOUNT_POINT,
  BOOT_CONFIG_PATH,
  type GuestInit,
} from "../../adapters/agent-launch.js";
import { type SandboxCgroups, createSandboxCgroups } from "../../adapters/cgroups.js";
import type { GuestDialer } from "../../adapters/guest-dialer.js";
import { type ImageRegistry, createImageRegistry } from "../../adapters/image-registry.js";
import { ensureReadOnlyBind } from "../../adapters/read-only-bind.js";
import { type Runsc, type RunscState, createRunsc, readTail } from "../../adapters/runsc.js";
import type { SandboxNetwork } from "../../adapters/sandbox-network.js";
import type {
  AdoptionReport,
  AgentEndpoint,
  EnsureHotResult,
  Engine,
  EngineEvent,
  EngineHealth,
  SandboxInfo,
  SandboxSpec,
  SandboxStats,
  StartOptions,
  ThermalState,
} from "../../engine/engine.js";
import { EngineError, isEngineError } from "../../engine/engine-error.js";
import { createKeyedSerializer } from "../../engine/keyed-serializer.js";
import { createSingleFlight } from "../../engine/single-flight.js";
import { validateSpec } from "../../engine/spec-validation.js";
import { quiesceForCheckpoint } from "./checkpoint-quiesce.js";
import { createHostAdmission } from "./host-admission.js";
import { type SandboxLayout, sandboxLayout } from "./layout.js";
import { SENTRY_OVERHEAD_MB, buildOciSpec } from "./oci-spec.js";
import {
  MAX_DISK_SIZE_MB,
  MIN_DISK_SIZE_MB,
  mountSandboxFs,
  sandboxDiskBytes,
  unmountSandboxFs,
} from "./sandbox-disk.js";
import {
  commitCheckpoint,
  checkpointTmpComplete,
  discardCheckpointTmp,
  markCheckpointComplete,
  quarantineSandboxDir,
  settleCheckpointTmp,
} from "./adoption-files.js";
import { type GvisorSandboxRecord, probeRecord, writeRecord } from "./sandbox-record.js";

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
  logger?: Logger;
}

export const DEFAULT_DISK_SIZE_MB = 4096;

const CONTROL_PORT = 1024;
const FORWARD_PORT = 1025;

interface Acquired {
  dir: boolean;
  mount: boolean;
  network: boolean;
  runsc: boolean;
}

export interface GvisorEngine extends Engine {
  readonly runsc: Runsc;
  readonly cgroups: SandboxCgroups;
  readonly images: ImageRegistry;
  readonly sandboxesDir: string;
  /** A client for the sandbox's agent through the engine's dialer (the caller closes it). */
  agentClient(id: string): Promise<AgentClient>;
  /** True while a create of `id` is in flight (not yet listed). */
  isCreating(id: string): boolean;
}

export function createGvisorEngine(options: GvisorEngineOptions): GvisorEngine {
  const sandboxesDir = join(options.stateDir, "sandboxes");
  mkdirSync(sandboxesDir, { recursive: true, mode: 0o700 });
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
  const serializer = createKeyedSerializer();
  const wakes = createSingleFlight<EnsureHotResult>();
  const sandboxes = new Map<string, GvisorSandboxRecord>();
  const pending = new Set<string>();
  const listeners = new Set<(e: EngineEvent) => void>();
  let runscVersion: string | undefined;

  const layoutOf = (id: string): SandboxLayout => sandboxLayout(sandboxesDir, id);
  const admission = createHostAdmission({
    stateDir: options.stateDir,
    memoryReserveMb: options.hostMemoryReserveMb ?? 1024,
    diskReserveMb: options.hostDiskReserveMb ?? 2048,
    ...(log ? { logger: log } : {}),
  });
  /** Memory limits (with sentry overhead) of the sandboxes that hold RAM: hot and warm. */
  const committedMemoryMb = () =>
    [...sandboxes.values()]
      .filter((r) => r.thermal !== "cold")
      .reduce((sum, r) => sum + r.memoryMb + SENTRY_OVERHEAD_MB, 0);
  // The agent package as sandboxes see it: a read-only, nosuid, nodev bind on the host (#14).
  const agentPackageMount = join(options.stateDir, "agent-ro");
  let agentBind: Promise<void> = Promise.resolve();
  /** (Re)binds the agent package; serialized, so concurrent creates never stack two binds. */
  const ensureAgentPackage = (): Promise<void> => {
    const init = options.init;
    if (init.kind !== "agent") return Promise.resolve();
    agentBind = agentBind
      .catch(() => undefined)
      .then(() => ensureReadOnlyBind(init.packageDir, agentPackageMount));
    return agentBind;
  };

  const emit = (
    kind: EngineEvent["kind"],
    r: { id: string; thermal: ThermalState },
    durationMs = 0,
    detail = "",
  ) => {
    const event: EngineEvent = {
      kind,
      sandboxId: r.id,
      at: Date.now(),
      thermal: r.thermal,
      durationMs,
      detail,
    };
    for (const l of listeners) {
      try {
        l(event);
      } catch (e) {
        log?.warn("event listener failed", { error: e });
      }
    }
  };

  const endpointOf = (r: GvisorSandboxRecord): AgentEndpoint => ({
    host: r.address,
    controlPort: CONTROL_PORT,
    forwardPort: FORWARD_PORT,
    token: r.token,
  });

  const infoOf = (r: GvisorSandboxRecord): SandboxInfo => {
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
      agent: endpointOf(r),
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
  };

  const mustGet = (id: string): GvisorSandboxRecord => {
    const r = sandboxes.get(id);
    if (!r) throw new EngineError("not_found", `sandbox ${id} not found`);
    return r;
  };

  const setThermal = (r: GvisorSandboxRecord, thermal: ThermalState) => {
    r.thermal = thermal;
    r.thermalSince = Date.now();
    r.status = thermal === "cold" ? "stopped" : "running";
    writeRecord(layoutOf(r.id).record, r);
  };

  /** An agent client for the sandbox (the caller closes it). */
  const agentClientOf = async (r: GvisorSandboxRecord, pool = false) =>
    createAgentClient({
      control: await options.dialer.endpoint(r.address, CONTROL_PORT),
      forward: await options.dialer.endpoint(r.address, FORWARD_PORT),
      token: r.token,
      pool: pool ? {} : false,
    });

  /** Resolves once the agent answers `exec true`; fails early if the sandbox dies meanwhile. */
  const waitReady = async (r: GvisorSandboxRecord) => {
    if (options.init.kind === "plain") {
      const s = await runsc.state(r.id);
      if (s?.status !== "running") throw new Error(`sandbox is ${s?.status ?? "gone"} after start`);
      return;
    }
    const client = await agentClientOf(r);
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
      await client.waitReady({ timeoutMs: readyTimeoutMs, signal: abort.signal });
    } catch (e) {
      const tail = readLogTail(layoutOf(r.id).log);
      throw new Error(
        `${abort.signal.aborted ? String(abort.signal.reason) : (e as Error).message}${tail ? `; runsc log: ${tail}` : ""}`,
      );
    } finally {
      clearInterval(check);
      client.close();
    }
  };

  /**
   * Kills every process of the sandbox and forgets its runsc container: runsc first (its
   * launcher, a subreaper, reaps the sandbox at once), then whatever is left in the cgroup
   * (the launcher itself, or everything if runsc could not do it).
   */
  const killSandbox = async (id: string) => {
    if (cgroups.isFrozen(id)) await cgroups.thaw(id).catch(() => undefined);
    try {
      await runsc.delete(id);
    } catch (e) {
      log?.warn("runsc delete failed; killing the cgroup", { sandbox: id, error: e });
      await cgroups.kill(id);
      await runsc.delete(id);
    }
    await cgroups.kill(id);
  };

  /** Best-effort removal of everything `acquired` says exists; logs and continues on errors. */
  const release = async (id: string, layout: SandboxLayout, acquired: Acquired) => {
    const step = async (what: string, fn: () => Promise<void> | void) => {
      try {
        await fn();
      } catch (e) {
        log?.warn(`release: ${what} failed`, { sandbox: id, error: e });
      }
    };
    if (acquired.runsc) await step("runsc delete", () => killSandbox(id));
    crashPoint("vmm.release.after-kill");
    await step("cgroups", () => cgroups.remove(id));
    if (acquired.mount) await step("unmount", () => unmountSandboxFs(layout));
    if (acquired.network) await step("network detach", () => options.network.detach(id));
    if (acquired.dir) await step("dir", () => rmSync(layout.dir, { recursive: true, force: true }));
  };

  const writeBootConfig = (r: GvisorSandboxRecord, spec: SandboxSpec, imageUser: string) => {
    const home = imageUser === "root" ? "/root" : `/home/${imageUser}`;
    const config: AgentBootConfig = {
      version: 1,
      sandbox_id: r.id,
      token: r.token,
      hostname: r.hostname,
      env: spec.env,
      secrets: spec.secrets,
      files: spec.files.map((f) => ({
        path: f.path,
        content: Buffer.from(f.content).toString("base64"),
        mode: (f.mode ?? 0o644).toString(8).padStart(4, "0"),
      })),
      user: { name: imageUser, uid: 1000, gid: 1000, home },
      // gVisor ignores setuid bits (so the image's sudo cannot work): the agent serves sudo
      // for the sandbox user over a local socket instead, and the shim replaces /usr/bin/sudo.
      allow_root_exec: true,
      sudo: { socket: DEFAULT_SUDO_SOCKET },
      ...(spec.init ? { init: spec.init } : {}),
    };
    writeFileSync(layoutOf(r.id).bootConfig, JSON.stringify(config), { mode: 0o600 });
  };

  const launchArgv = (): string[] =>
    options.init.kind === "agent" ? options.init.argv(BOOT_CONFIG_PATH) : options.init.argv();

  /**
   * resolv.conf names only the per-user resolver (never also a public one: glibc treats
   * NXDOMAIN as final, so a second server would never be asked for sibling names anyway).
   */
  const writeNameFiles = (r: GvisorSandboxRecord, layout: SandboxLayout) => {
    mkdirSync(dirname(layout.resolvConf), { recursive: true });
    const dns = r.dnsServer ?? r.gateway;
    writeFileSync(layout.resolvConf, `nameserver ${dns}\noptions timeout:2 attempts:1\n`, { mode: 0o644 });
    writeFileSync(
      layout.hosts,
      `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${r.address}\t${r.hostname}\n`,
      { mode: 0o644 },
    );
  };

  /** The package's sudo shim, when the image has a sudo to replace (lstat: it may be an absolute link). */
  const sudoShimFor = (r: GvisorSandboxRecord): string | undefined => {
    if (options.init.kind !== "agent") return undefined;
    try {
      lstatSync(join(r.imageRootfs, "usr/bin/sudo"));
    } catch {
      return undefined;
    }
    return join(agentPackageMount, "bin/sudo");
  };

  const writeBundle = (r: GvisorSandboxRecord, layout: SandboxLayout) => {
    mkdirSync(layout.bundle, { recursive: true });
    writeNameFiles(r, layout);
    const sudoShim = sudoShimFor(r);
    const spec = buildOciSpec({
      rootfs: layout.rootfs,
      hostname: r.hostname,
      argv: launchArgv(),
      netnsPath: r.netnsPath,
      cgroupsPath: cgroups.ociPath(r.id),
      cpus: r.cpus,
      memoryMb: r.memoryMb,
      pidsLimit: r.pidsLimit,
      limitSwap: cgroups.swapAccounting(),
      ...(options.init.kind === "agent" ? { agentPackageDir: agentPackageMount } : {}),
      agentMountPoint: AGENT_MOUNT_POINT,
      bootDir: layout.boot,
      bootMountPoint: BOOT_CONFIG_MOUNT_POINT,
      resolvConf: layout.resolvConf,
      hosts: layout.hosts,
      ...(sudoShim === undefined ? {} : { sudoShim }),
    });
    writeFileSync(join(layout.bundle, "config.json"), JSON.stringify(spec, null, 2));
  };

  const asEngineError = (e: unknown, what: string): EngineError =>
    isEngineError(e)
      ? e
      : new EngineError("internal", `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });

  // ---- transitions (each runs inside the sandbox's serializer) ----

  const doPause = async (r: GvisorSandboxRecord) => {
    if (r.thermal !== "hot") return;
    const t0 = performance.now();
    if (warmMethod === "freeze") await cgroups.freeze(r.id);
    else await runsc.pause(r.id);
    r.warmBy = warmMethod;
    setThermal(r, "warm");
    emit("thermal.pause", r, performance.now() - t0);
  };

  const doResume = async (r: GvisorSandboxRecord) => {
    if (r.thermal !== "warm") return;
    const t0 = performance.now();
    if (r.warmBy === "runsc") await runsc.resume(r.id);
    else await cgroups.thaw(r.id);
    delete r.warmBy;
    setThermal(r, "hot");
    emit("thermal.resume", r, performance.now() - t0);
  };

  const doStop = async (r: GvisorSandboxRecord) => {
    if (r.thermal === "cold") return;
    const layout = layoutOf(r.id);
    // Refused before anything changes: the sandbox stays as it is (hot or warm).
    admission.checkCheckpointSpace(r.id, r.memoryMb);
    const t0 = performance.now();
    await doResume(r);
    rmSync(layout.checkpointTmp, { recursive: true, force: true });
    mkdirSync(layout.checkpointTmp, { recursive: true, mode: 0o700 });
    try {
      await quiesceForCheckpoint({
        id: r.id,
        dialer: options.dialer,
        runsc,
        host: r.address,
        controlPort: CONTROL_PORT,
        agentToken: options.init.kind === "agent" ? r.token : undefined,
        timeoutMs: 5_000,
        log,
      });
      await runsc.checkpoint(r.id, layout.checkpointTmp);
      const img = join(layout.checkpointTmp, "checkpoint.img");
      if (!existsSync(img) || statSync(img).size === 0)
        throw new Error("checkpoint image is missing or empty");
      syncDir(layout.checkpointTmp);
      markCheckpointComplete(layout);
    } catch (e) {
      rmSync(layout.checkpointTmp, { recursive: true, force: true });
      // quiesceForCheckpoint left it paused by runsc: let it run again.
      if ((await runsc.state(r.id).catch(() => undefined))?.status === "paused")
        await runsc.resume(r.id).catch(() => undefined);
      // Keep the sandbox alive when the checkpoint failed (v1 R5/R6): park it warm.
      const s = await runsc.state(r.id).catch(() => undefined);
      if (s?.status === "running") {
        await doPause(r).catch(() => undefined);
        throw new EngineError(
          "internal",
          `checkpoint failed, sandbox kept alive (warm): ${(e as Error).message}`,
        );
      }
      r.restoreError = `checkpoint failed and the sandbox died: ${(e as Error).message}`;
      r.status = "unknown";
      writeRecord(layout.record, r);
      throw new EngineError("internal", r.restoreError);
    }
    crashPoint("vmm.stop.after-checkpoint");
    await killSandbox(r.id);
    // A crash from here to setThermal leaves a complete checkpoint.tmp that adoption promotes.
    crashPoint("vmm.stop.after-kill");
    commitCheckpoint(layout);
    crashPoint("vmm.stop.after-rename");
    await unmountSandboxFs(layout);
    r.checkpointBytes = dirBytes(layout.checkpoint);
    setThermal(r, "cold");
    emit("thermal.snapshot", r, performance.now() - t0, `${r.checkpointBytes} bytes`);
  };

  const doStart = async (r: GvisorSandboxRecord, force: boolean) => {
    if (r.thermal === "warm") return doResume(r);
    if (r.thermal === "hot") return;
    if (r.restoreError !== undefined && !force) {
      throw new EngineError(
        "failed_precondition",
        `sandbox ${r.id} failed to restore (${r.restoreError}); run \`bhatti start --force\` to retry, or destroy and recreate it`,
      );
    }
    const layout = layoutOf(r.id);
    if (!existsSync(join(layout.checkpoint, "checkpoint.img"))) {
      r.status = "unknown";
      r.restoreError = "no checkpoint on disk";
      writeRecord(layout.record, r);
      throw new EngineError("failed_precondition", `sandbox ${r.id} has no checkpoint to restore`);
    }
    delete r.restoreError;
    const t0 = performance.now();
    try {
      await ensureAgentPackage();
      await mountSandboxFs(layout, r.imageRootfs);
      const net = await options.network.attach({
        sandboxId: r.id,
        userId: r.userId,
        sandboxName: r.name,
        requestedAddress: r.address,
      });
      if (net.address !== r.address)
        throw new Error(`network gave address ${net.address}, expected ${r.address}`);
      await runsc.delete(r.id);
      const procs = cgroups.ensureUnified(r.id);
      crashPoint("vmm.start.before-restore");
      await runsc.restore(r.id, layout.bundle, layout.checkpoint, {
        cgroupProcs: [procs],
        logFile: layout.log,
        timeoutMs: 120_000,
      });
      crashPoint("vmm.start.after-restore");
      await waitReady(r);
    } catch (e) {
      await killSandbox(r.id).catch(() => undefined);
      r.restoreError = (e as Error).message;
      r.status = "unknown";
      writeRecord(layout.record, r);
      emit("thermal.restore_failed", r, performance.now() - t0, r.restoreError);
      throw new EngineError("internal", `restore of sandbox ${r.id} failed: ${r.restoreError}`, { cause: e });
    }
    // The restored memory is live now; the old image no longer matches the disk.
    rmSync(layout.checkpoint, { recursive: true, force: true });
    delete r.checkpointBytes;
    setThermal(r, "hot");
    emit("thermal.restore", r, performance.now() - t0);
  };

  /** doStart behind host admission: a restore that will really run must fit the host (#25). */
  const doStartAdmitted = async (r: GvisorSandboxRecord, force: boolean) => {
    if (r.thermal !== "cold" || (r.restoreError !== undefined && !force)) return doStart(r, force);
    const admitted = admission.admit(
      r.id,
      "restore",
      { memoryMb: r.memoryMb, diskMb: 0 },
      committedMemoryMb(),
    );
    try {
      await doStart(r, force);
    } finally {
      admitted.release();
    }
  };

  const engine: GvisorEngine = {
    kind: "gvisor",
    runsc,
    cgroups,
    images,
    sandboxesDir,

    async adopt() {
      const report: AdoptionReport = { running: [], cold: [], unknown: [], removed: [] };
      let dirs: string[] = [];
      try {
        dirs = readdirSync(sandboxesDir);
      } catch {
        dirs = [];
      }
      const known = new Set<string>();
      for (const id of dirs) {
        if (id.startsWith(".")) continue; // .quarantine
        if (sandboxes.has(id) || pending.has(id)) {
          known.add(id);
          continue;
        }
        const layout = layoutOf(id);
        const probe = probeRecord(layout.record, id);
        if (probe.kind === "missing") {
          // The record is written last, once the agent answered: a create that never finished,
          // whose caller got an error. Nothing in it was ever handed to anyone.
          await release(id, layout, { dir: true, mount: true, network: true, runsc: true });
          report.removed.push(id);
          continue;
        }
        if (probe.kind === "unreadable") {
          // Without the record the sandbox cannot be served (no token, no address), but its disk
          // and checkpoint may be somebody's work: stop what runs, keep the files aside (#10).
          await release(id, layout, { dir: false, mount: true, network: true, runsc: true });
          const target = quarantineSandboxDir(sandboxesDir, id, `engine.json unreadable: ${probe.reason}`);
          log?.error("sandbox record unreadable; directory quarantined", {
            sandbox: id,
            reason: probe.reason,
            quarantined_to: target,
          });
          report.removed.push(id);
          continue;
        }
        const r = probe.record;
        known.add(id);
        // `runsc checkpoint` ends the sandbox once the image is written, even if runsc still calls
        // it running (seen in the crash matrix): a complete checkpoint.tmp means the stop got that
        // far, and the sandbox is cold whatever runsc says (#26).
        const checkpointed = checkpointTmpComplete(layout);
        // A frozen sandbox cannot answer runsc (its control server is frozen too): ask the cgroup.
        if (!checkpointed && cgroups.isFrozen(id) && cgroups.pids(id).length > 0) {
          r.thermal = "warm";
          r.warmBy = "freeze";
          r.status = "running";
          report.running.push(id);
        } else {
          let s: RunscState | undefined;
          let stateError: unknown;
          try {
            s = await runsc.state(id);
          } catch (e) {
            stateError = e;
          }
          if (checkpointed) {
            stateError = undefined;
            s ??= { id, status: "stopped", pid: 0 };
          }
          if (stateError !== undefined) {
            // Never kill what we cannot see: keep it, marked unknown, for an operator or destroy.
            r.status = "unknown";
            r.restoreError = `runsc state failed at adoption: ${(stateError as Error).message}`;
            report.unknown.push(id);
          } else if (!checkpointed && s && (s.status === "running" || s.status === "paused")) {
            if (s.status === "paused") {
              r.thermal = "warm";
              r.warmBy = "runsc";
            } else {
              r.thermal = "hot";
              delete r.warmBy;
            }
            r.status = "running";
            discardCheckpointTmp(layout);
            // A restore that was cut off after runsc restored it: the memory is live, so the old
            // image no longer matches the disk (as start does once the agent answers).
            if (existsSync(layout.checkpoint)) {
              rmSync(layout.checkpoint, { recursive: true, force: true });
              delete r.checkpointBytes;
              delete r.restoreError;
            }
            report.running.push(id);
          } else {
            if (s) await killSandbox(id).catch(() => undefined);
            await cgroups.kill(id).catch(() => undefined);
            await unmountSandboxFs(layout).catch(() => undefined);
            // A crash between the kill and the rename of a stop: the image is complete (#26).
            if (settleCheckpointTmp(layout)) {
              delete r.restoreError;
              r.checkpointBytes = dirBytes(layout.checkpoint);
              log?.info("promoted a complete checkpoint.tmp at adoption", { sandbox: id });
            }
            if (existsSync(join(layout.checkpoint, "checkpoint.img"))) {
              if (r.thermal !== "cold") r.thermalSince = Date.now();
              r.thermal = "cold";
              r.status = r.restoreError === undefined ? "stopped" : "unknown";
              (r.restoreError === undefined ? report.cold : report.unknown).push(id);
            } else {
              r.thermal = "cold";
              r.status = "unknown";
              r.restoreError ??= "sandbox was not running and has no checkpoint";
              report.unknown.push(id);
            }
          }
        }
        writeRecord(layout.record, r);
        sandboxes.set(id, r);
        emit("sandbox.adopted", r);
      }
      // runsc containers and cgroups that belong to no sandbox.
      for (const id of await runsc.list().catch(() => [] as string[])) {
        if (known.has(id)) continue;
        await killSandbox(id).catch(() => undefined);
        report.removed.push(id);
      }
      for (const id of cgroups.listIds()) {
        if (known.has(id)) continue;
        await cgroups.kill(id).catch(() => undefined);
        await cgroups.remove(id).catch(() => undefined);
      }
      return report;
    },

    async create(input) {
      const spec = validateSpec(input);
      const image = images.get(spec.image);
      if (!image) throw new EngineError("not_found", `image "${spec.image}" not found`);
      const layout = layoutOf(spec.id);
      if (sandboxes.has(spec.id) || pending.has(spec.id) || existsSync(layout.dir)) {
        throw new EngineError("already_exists", `sandbox ${spec.id} already exists`);
      }
      const diskSizeMb = spec.diskSizeMb || (options.defaultDiskSizeMb ?? DEFAULT_DISK_SIZE_MB);
      if (!Number.isInteger(diskSizeMb) || diskSizeMb < MIN_DISK_SIZE_MB || diskSizeMb > MAX_DISK_SIZE_MB) {
        throw new EngineError(
          "invalid_argument",
          `disk_size_mb must be an integer between ${MIN_DISK_SIZE_MB} and ${MAX_DISK_SIZE_MB}, got ${diskSizeMb}`,
        );
      }
      // Checked synchronously with the id marked pending: concurrent creates count each other.
      const admitted = admission.admit(
        spec.id,
        "create",
        { memoryMb: spec.memoryMb, diskMb: diskSizeMb },
        committedMemoryMb(),
      );
      pending.add(spec.id);
      return serializer.run(spec.id, async () => {
        const acquired: Acquired = { dir: false, mount: false, network: false, runsc: false };
        const t0 = performance.now();
        try {
          mkdirSync(layout.dir, { recursive: true, mode: 0o700 });
          acquired.dir = true;
          mkdirSync(layout.boot, { recursive: true, mode: 0o700 });
          // The root filesystem and the network are independent: prepare both at once.
          acquired.mount = true;
          acquired.network = true;
          const [, net] = await Promise.all([
            ensureAgentPackage().then(() => mountSandboxFs(layout, image.rootfs, { diskSizeMb })),
            options.network.attach({ sandboxId: spec.id, userId: spec.userId, sandboxName: spec.name }),
          ]);
          const tPrepared = performance.now();
          const now = Date.now();
          const r: GvisorSandboxRecord = {
            version: 1,
            id: spec.id,
            name: spec.name,
            image: image.name,
            imageRootfs: image.rootfs,
            cpus: spec.cpus,
            memoryMb: spec.memoryMb,
            pidsLimit: spec.pidsLimit,
            userId: spec.userId,
            hostname: spec.hostname,
            createdAt: now,
            token: randomBytes(16).toString("hex"),
            address: net.address,
            gateway: net.gateway,
            dnsServer: net.dnsServer,
            netnsPath: net.netnsPath,
            status: "running",
            thermal: "hot",
            thermalSince: now,
          };
          writeBootConfig(r, spec, image.user);
          writeBundle(r, layout);
          const procs = cgroups.ensureUnified(spec.id);
          acquired.runsc = true;
          await runsc.run(spec.id, layout.bundle, { cgroupProcs: [procs], logFile: layout.log });
          crashPoint("vmm.create.after-runsc-run");
          const tStarted = performance.now();
          await waitReady(r);
          const tReady = performance.now();
          // The agent has read the boot config (secrets); make sure it is gone from disk.
          rmSync(layout.bootConfig, { force: true });
          crashPoint("vmm.create.before-write-record");
          writeRecord(layout.record, r);
          crashPoint("vmm.create.after-write-record");
          sandboxes.set(r.id, r);
          emit(
            "sandbox.created",
            r,
            performance.now() - t0,
            `prepare ${(tPrepared - t0).toFixed(0)} ms, runsc run ${(tStarted - tPrepared).toFixed(0)} ms, agent ready ${(tReady - tStarted).toFixed(0)} ms`,
          );
          return infoOf(r);
        } catch (e) {
          await release(spec.id, layout, acquired);
          throw asEngineError(e, `create sandbox ${spec.id}`);
        } finally {
          pending.delete(spec.id);
          admitted.release();
        }
      });
    },

    destroy(id) {
      if (!/^[0-9a-f]{16}$/.test(id)) return Promise.resolve(false);
      return serializer.run(id, async () => {
        const r = sandboxes.get(id);
        sandboxes.delete(id);
        const layout = layoutOf(id);
        const existed = r !== undefined || existsSync(layout.dir);
        if (!existed) return false;
        const t0 = performance.now();
        await release(id, layout, { dir: true, mount: true, network: true, runsc: true });
        if (r) emit("sandbox.destroyed", r, performance.now() - t0);
        return true;
      });
    },

    pause: (id) =>
      serializer.run(id, async () => {
        const r = mustGet(id);
        try {
          await doPause(r);
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
          await doResume(r);
        } catch (e) {
          throw asEngineError(e, `resume ${id}`);
        }
        return infoOf(r);
      }),

    stop: (id) =>
      serializer.run(id, async () => {
        const r = mustGet(id);
        try {
          await doStop(r);
        } catch (e) {
          throw asEngineError(e, `stop ${id}`);
        }
        return infoOf(r);
      }),

    start: (id, startOptions: StartOptions = {}) =>
      serializer.run(id, async () => {
        const r = mustGet(id);
        await doStartAdmitted(r, startOptions.force === true);
        return infoOf(r);
      }),

    ensureHot(id) {
      const r0 = sandboxes.get(id);
      // Only an idle sandbox answers at once: a stop runs its sandbox again (hot) to quiesce it
      // before the checkpoint, and a caller told "hot" then would dial an agent about to be
      // paused and killed (reset or hung). Behind a transition, wait for it and wake after.
      if (r0?.thermal === "hot" && !serializer.busy(id))
        return Promise.resolve({ info: infoOf(r0), from: "hot", wakeMs: 0 });
      return wakes.do(id, () =>
        serializer.run(id, async () => {
          const r = mustGet(id);
          const from = r.thermal;
          const t0 = performance.now();
          if (from === "warm") await doResume(r);
          else if (from === "cold") await doStartAdmitted(r, false);
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
      const layout = layoutOf(id);
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

    agentEndpoint: (id) => endpointOf(mustGet(id)),

    agentClient: (id) => agentClientOf(mustGet(id), true),

    isCreating: (id) => pending.has(id),

    async health(): Promise<EngineHealth> {
      const facts: Record<string, string> = {
        engine: "gvisor",
        runsc_path: runsc.path,
        runsc_platform: runsc.platform,
        warm_method: warmMethod,
        guest_init: options.init.kind,
        images: images
          .list()
          .map((i) => i.name)
          .join(","),
        sandboxes: String(sandboxes.size),
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
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    async close() {
      listeners.clear();
    },
  };
  return engine;
}

/** fsyncs every file of the checkpoint so a host crash cannot leave a torn image (v1 R22). */
function syncDir(dir: string): void {
  for (const name of readdirSync(dir)) {
    const fd = openSync(join(dir, name), "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}

/** The last lines of the sandbox's runsc log (runsc and early agent output), for errors; reads only the tail. */
function readLogTail(path: string, max = 2048): string {
  return readTail(path, 0, max).split("\n").slice(-10).join("\n");
}

/** Bytes used by the files under a directory (0 if it does not exist). */
function dirBytes(dir: string): number {
  let total = 0;
  const walk = (d: string) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        try {
          total += statSync(p).size;
        } catch {
          // raced with removal
        }
      }
    }
  };
  walk(dir);
  return total;
}
