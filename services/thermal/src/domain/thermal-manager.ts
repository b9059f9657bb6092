import { type Logger, crashPoint } from "@bhatti/runtime";
import { Code, ConnectError } from "@connectrpc/connect";
import { type FailureCounters, createFailureCounters } from "./failure-counters.js";
import { type Pin, type PinRegistry, createPinRegistry } from "./pin-registry.js";
import type {
  AgentProbe,
  EngineSandbox,
  EngineWake,
  SandboxRow,
  StorePort,
  ThermalEvent,
  VmmPort,
} from "./ports.js";
import {
  FORCE_PAUSE_AFTER_FAILURES,
  type Thermal,
  type ThermalThresholds,
  UNKNOWN_AFTER_SNAPSHOT_FAILURES,
  decide,
  decideAfterProbe,
} from "./thermal-policy.js";

export interface ThermalManagerOptions {
  readonly vmm: VmmPort;
  readonly store: StorePort;
  readonly probe: AgentProbe;
  readonly logger: Logger;
  readonly thresholds: ThermalThresholds;
  readonly tickMs: number;
  readonly maxColdWakes: number;
  /** Transitions (probe+pause, snapshot) running at once across sandboxes. */
  readonly maxConcurrentActions?: number;
  readonly now?: () => number;
}

/** The policy's view of one sandbox (ListThermal / GetThermal). */
export interface SandboxThermalView {
  readonly sandboxId: string;
  readonly thermal: Thermal | "";
  readonly thermalSince: number;
  readonly status: string;
  readonly keepHot: boolean;
  readonly lastActivity: number;
  readonly pin: Pin;
  readonly activityFailures: number;
  readonly snapshotFailures: number;
}

export interface ActivityReport {
  readonly reporter: string;
  readonly activity: ReadonlyMap<string, number>;
  readonly pins: ReadonlyMap<string, Pin>;
  readonly pinTtlMs: number;
}

export interface ThermalManager {
  /** Loads the stored state, wakes keep_hot sandboxes and starts the review loop. */
  start(): void;
  /** One review of every sandbox (the loop calls it every tick; tests may call it). */
  tick(): Promise<void>;
  report(report: ActivityReport): void;
  wake(sandboxId: string): Promise<EngineWake>;
  get(sandboxId: string): SandboxThermalView | undefined;
  list(): SandboxThermalView[];
  /** Sandboxes per state: hot, warm, cold, unknown. */
  counts(): Record<"hot" | "warm" | "cold" | "unknown", number>;
  /** True once the vmm and store have each answered a listing. */
  readiness(): { vmm: string | undefined; store: string | undefined };
  /** Stops the loop, refuses wakes, and checkpoints every running sandbox. */
  snapshotAll(parallelism: number): Promise<{ snapshotted: string[]; failed: string[] }>;
  /** Stops the loop and waits for transitions in flight (they are never abandoned halfway). */
  stop(): Promise<void>;
}

const PROBE_TIMEOUT_MS = 5_000;
/** Activity is written to the store at most this often per sandbox. */
const PERSIST_GRANULARITY_MS = 1_000;
/** keep_hot sandboxes whose wake failed are not retried more often than this. */
const KEEP_HOT_RETRY_MS = 60_000;

export class WakeBusyError extends ConnectError {
  constructor() {
    super("server busy, retry shortly", Code.ResourceExhausted);
  }
}

export function createThermalManager(options: ThermalManagerOptions): ThermalManager {
  const { vmm, store, probe, logger, thresholds } = options;
  const now = options.now ?? Date.now;
  const maxActions = options.maxConcurrentActions ?? 4;

  const rows = new Map<string, SandboxRow>();
  const engines = new Map<string, EngineSandbox>();
  const lastActivity = new Map<string, number>();
  const persisted = new Map<string, number>();
  const pins: PinRegistry = createPinRegistry();
  const activityFailures: FailureCounters = createFailureCounters();
  const snapshotFailures: FailureCounters = createFailureCounters();
  /** One transition per sandbox at a time (probe+pause or snapshot). */
  const actions = new Map<string, Promise<void>>();
  const wakes = new Map<string, Promise<EngineWake>>();
  /** Checkpoints (vmm stops) in flight: a wake waits for one, then restores what it left. */
  const checkpoints = new Map<string, Promise<unknown>>();
  const keepHotAttempts = new Map<string, number>();
  let coldWakes = 0;
  /** Cold wakes in progress per user: one user may hold at most half the slots (at least one). */
  const coldWakesByUser = new Map<string, number>();
  const perUserColdWakes = Math.max(1, Math.floor(options.maxColdWakes / 2));
  let timer: NodeJS.Timeout | undefined;
  let ticking: Promise<void> | undefined;
  let stopped = false;
  let draining = false;
  let stopWatching: (() => void) | undefined;
  let vmmError: string | undefined = "not listed yet";
  let storeError: string | undefined = "not listed yet";

  const emit = (events: ThermalEvent[]) => {
    store.appendEvents(events).catch((e: unknown) =>
      logger.warn("recording thermal events failed", {
        types: events.map((e) => e.type),
        error: ConnectError.from(e).rawMessage,
      }),
    );
  };
  const userOf = (id: string) => rows.get(id)?.userId ?? engines.get(id)?.userId ?? "";

  /** Any activity restarts the idle clock and clears both failure counters (v1 §3.2). */
  const touch = (id: string, at: number) => {
    if (at > (lastActivity.get(id) ?? 0)) lastActivity.set(id, at);
    activityFailures.reset(id);
    snapshotFailures.reset(id);
  };

  const forget = (id: string) => {
    rows.delete(id);
    engines.delete(id);
    lastActivity.delete(id);
    persisted.delete(id);
    activityFailures.reset(id);
    snapshotFailures.reset(id);
    keepHotAttempts.delete(id);
  };

  const setEngine = (info: EngineSandbox) => engines.set(info.id, info);

  const isPinned = (id: string) => pins.isPinned(id, now()) || wakes.has(id);

  /** Re-checks, right before a pause, everything that may have changed while the probe ran. */
  const stillIdle = (id: string) => {
    const row = rows.get(id);
    const info = engines.get(id);
    if (stopped || draining || row === undefined || info === undefined) return false;
    if (row.keepHot || row.status !== "running" || info.thermal !== "hot" || isPinned(id)) return false;
    return now() - (lastActivity.get(id) ?? 0) >= thresholds.warmAfterMs;
  };

  const pause = async (id: string, kind: "thermal.pause" | "thermal.force_pause", meta: object) => {
    const t0 = performance.now();
    const info = await vmm.pause(id);
    crashPoint("thermal.pause.after-vmm-pause");
    setEngine(info);
    emit([
      {
        type: kind,
        sandboxId: id,
        userId: userOf(id),
        meta: { ...meta, pause_ms: Math.round((performance.now() - t0) * 100) / 100 },
      },
    ]);
    logger.info(kind === "thermal.pause" ? "paused idle sandbox" : "force-paused sandbox", {
      sandbox_id: id,
      ...meta,
    });
  };

  const probeThenPause = async (id: string, idleMs: number) => {
    const info = engines.get(id);
    const startedAt = now();
    if (info?.agent === undefined) return;
    let activity: Awaited<ReturnType<AgentProbe["activity"]>>;
    try {
      activity = await probe.activity(info.agent, PROBE_TIMEOUT_MS);
    } catch (e) {
      // Activity that arrived while the query ran makes its failure moot.
      if ((lastActivity.get(id) ?? 0) > startedAt || !stillIdle(id)) return;
      const failures = activityFailures.increment(id);
      logger.warn("agent activity query failed", {
        sandbox_id: id,
        failures,
        error: (e as Error).message,
      });
      if (failures < FORCE_PAUSE_AFTER_FAILURES) return;
      // The agent cannot be asked, so it cannot object: pausing needs no agent (v1 R3).
      activityFailures.reset(id);
      lastActivity.set(id, now());
      await pause(id, "thermal.force_pause", { failures, error: (e as Error).message });
      return;
    }
    activityFailures.reset(id);
    const decision = decideAfterProbe(activity, lastActivity.get(id) ?? 0, now(), thresholds);
    if (decision.kind === "keep") {
      if (decision.lastActivity > (lastActivity.get(id) ?? 0)) lastActivity.set(id, decision.lastActivity);
      if (decision.reason === "attached session") {
        logger.debug("pause blocked by an attached session", { sandbox_id: id });
      }
      return;
    }
    if (!stillIdle(id)) return;
    await pause(id, "thermal.pause", { idle_ms: Math.round(Math.max(idleMs, decision.idleMs)) });
  };

  const snapshot = async (id: string, warmForMs: number) => {
    const row = rows.get(id);
    const info = engines.get(id);
    if (stopped || draining || row === undefined || info?.thermal !== "warm" || row.keepHot) return;
    if (isPinned(id)) return;
    const t0 = performance.now();
    try {
      crashPoint("thermal.stop.before-vmm-stop");
      // Only if still warm: a gateway thaws a warm sandbox through the vmm directly, and this
      // decision may predate that thaw.
      const stopping = vmm.stop(id, { onlyIfWarm: true });
      checkpoints.set(id, stopping);
      let after: EngineSandbox;
      try {
        after = await stopping;
      } finally {
        checkpoints.delete(id);
      }
      crashPoint("thermal.stop.after-vmm-stop");
      setEngine(after);
      if (after.thermal !== "cold") {
        lastActivity.set(id, now());
        logger.debug("checkpoint skipped: the sandbox woke since it was seen warm", { sandbox_id: id });
        return;
      }
      snapshotFailures.reset(id);
      const ms = Math.round((performance.now() - t0) * 100) / 100;
      emit([
        { type: "thermal.snapshot", sandboxId: id, userId: userOf(id), meta: { warm_ms: warmForMs, ms } },
        { type: "sandbox.stopped", sandboxId: id, userId: userOf(id), meta: { reason: "thermal" } },
      ]);
      logger.info("checkpointed warm sandbox to cold", { sandbox_id: id, ms });
    } catch (e) {
      const err = ConnectError.from(e);
      const error = err.rawMessage;
      // Unavailable means the host (not the sandbox) could not take the checkpoint now: the vmm
      // refused for lack of disk, or was restarting. The sandbox stays warm and is tried again
      // at a later review; it must not count towards being marked unknown.
      if (err.code === Code.Unavailable) {
        emit([
          {
            type: "thermal.snapshot_failed",
            sandboxId: id,
            userId: userOf(id),
            meta: { deferred: true, error },
          },
        ]);
        logger.warn("cold snapshot deferred: host unavailable", { sandbox_id: id, error });
        return;
      }
      const failures = snapshotFailures.increment(id);
      emit([
        {
          type: "thermal.snapshot_failed",
          sandboxId: id,
          userId: userOf(id),
          meta: { failures, error },
        },
      ]);
      logger.warn("cold snapshot failed", { sandbox_id: id, failures, error });
      if (failures >= UNKNOWN_AFTER_SNAPSHOT_FAILURES) {
        snapshotFailures.reset(id);
        const current = rows.get(id);
        if (current !== undefined) rows.set(id, { ...current, status: "unknown" });
        await store.setStatus(id, "unknown").catch((err: unknown) =>
          logger.warn("marking sandbox unknown failed", {
            sandbox_id: id,
            error: ConnectError.from(err).rawMessage,
          }),
        );
      }
    }
  };

  const launch = (id: string, work: () => Promise<void>) => {
    const p = work()
      .catch((e: unknown) =>
        logger.warn("thermal transition failed", { sandbox_id: id, error: ConnectError.from(e).rawMessage }),
      )
      .finally(() => actions.delete(id));
    actions.set(id, p);
  };

  const wakeKeepHot = (row: SandboxRow) => {
    const last = keepHotAttempts.get(row.id);
    if (last !== undefined && now() - last < KEEP_HOT_RETRY_MS) return;
    keepHotAttempts.set(row.id, now());
    manager.wake(row.id).then(
      () => keepHotAttempts.delete(row.id),
      (e: unknown) =>
        logger.warn("waking keep_hot sandbox failed", {
          sandbox_id: row.id,
          error: ConnectError.from(e).rawMessage,
        }),
    );
  };

  const persistActivity = async () => {
    const due = new Map<string, number>();
    for (const [id, at] of lastActivity) {
      if (at - (persisted.get(id) ?? 0) >= PERSIST_GRANULARITY_MS && rows.has(id)) due.set(id, at);
    }
    if (due.size === 0) return;
    await store.saveLastActivity(due);
    for (const [id, at] of due) persisted.set(id, at);
  };

  let firstReview = true;

  const review = async () => {
    let listedRows: SandboxRow[];
    let listedEngines: EngineSandbox[];
    const [r, v] = await Promise.allSettled([store.listSandboxes(), vmm.list()]);
    storeError = r.status === "rejected" ? ConnectError.from(r.reason).rawMessage : undefined;
    vmmError = v.status === "rejected" ? ConnectError.from(v.reason).rawMessage : undefined;
    if (r.status === "rejected" || v.status === "rejected") return;
    listedRows = r.value;
    listedEngines = v.value;
    const seen = new Set<string>();
    for (const row of listedRows) {
      seen.add(row.id);
      rows.set(row.id, row);
      // A restarted thermal service continues from the stored activity.
      if (row.lastActivityAt > (lastActivity.get(row.id) ?? 0)) lastActivity.set(row.id, row.lastActivityAt);
      if (!persisted.has(row.id)) persisted.set(row.id, row.lastActivityAt);
    }
    for (const id of [...rows.keys()]) if (!seen.has(id)) forget(id);
    // A wake in flight knows better than a listing taken before it finished.
    for (const info of listedEngines) if (!wakes.has(info.id)) setEngine(info);
    const listedIds = new Set(listedEngines.map((e) => e.id));
    for (const id of [...engines.keys()]) if (!listedIds.has(id)) engines.delete(id);

    const t = now();
    for (const row of rows.values()) {
      const info = engines.get(row.id);
      // keep_hot sandboxes are woken after a restart (v1 recovery) and whenever found cooled.
      if (row.keepHot && info !== undefined && info.thermal !== "hot" && row.status !== "unknown") {
        if (firstReview || row.status === "running") wakeKeepHot(row);
        continue;
      }
      if (actions.has(row.id) || actions.size >= maxActions) continue;
      if (isPinned(row.id)) {
        // A live client is activity; its departure restarts the idle clock.
        lastActivity.set(row.id, t);
        continue;
      }
      const decision = decide(
        {
          status: row.status,
          thermal: info?.thermal,
          thermalSince: info?.thermalSince ?? 0,
          keepHot: row.keepHot,
          lastActivity: lastActivity.get(row.id) ?? 0,
          pinned: false,
          snapshotFailures: snapshotFailures.get(row.id),
        },
        t,
        thresholds,
      );
      if (decision.kind === "probe") launch(row.id, () => probeThenPause(row.id, decision.idleMs));
      else if (decision.kind === "snapshot") launch(row.id, () => snapshot(row.id, decision.warmForMs));
    }
    firstReview = false;
    await persistActivity().catch((e: unknown) =>
      logger.warn("saving last activity failed", { error: ConnectError.from(e).rawMessage }),
    );
  };

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      void manager.tick().finally(schedule);
    }, options.tickMs);
    timer.unref();
  };

  const manager: ThermalManager = {
    start() {
      stopWatching = vmm.watch((id, kind, thermal) => {
        if (kind === "destroyed") {
          engines.delete(id);
          return;
        }
        const info = engines.get(id);
        if (info !== undefined && thermal !== undefined && info.thermal !== thermal) {
          engines.set(id, { ...info, thermal, thermalSince: now() });
        }
      });
      void manager.tick().finally(schedule);
    },

    tick() {
      if (stopped) return Promise.resolve();
      ticking ??= review()
        .catch((e: unknown) => logger.warn("thermal review failed", { error: (e as Error).message }))
        .finally(() => {
          ticking = undefined;
        });
      return ticking;
    },

    report(r) {
      const t = now();
      for (const [id, at] of r.activity) touch(id, Math.min(at, t));
      pins.replace(r.reporter, r.pins, r.pinTtlMs, t);
      for (const [id, pin] of r.pins) {
        if (pin.interactiveClients > 0 || pin.inFlight > 0) touch(id, t);
      }
    },

    wake(id) {
      if (draining || stopped) {
        return Promise.reject(new ConnectError("thermal service is shutting down", Code.Unavailable));
      }
      touch(id, now());
      const pending = wakes.get(id);
      if (pending !== undefined) return pending;
      const checkpoint = checkpoints.get(id);
      if (checkpoint !== undefined) {
        // The sandbox is being checkpointed: the vmm finishes that first and then restores it.
        // Decide (and bound) the wake as the cold wake it will be once the checkpoint is done.
        // Registered as a wake at once, so that concurrent callers share it.
        const p = checkpoint
          .catch(() => undefined)
          .then(() => {
            wakes.delete(id);
            return manager.wake(id);
          });
        wakes.set(id, p);
        return p;
      }
      const cold = engines.get(id)?.thermal === "cold";
      const owner = userOf(id);
      if (cold && coldWakes >= options.maxColdWakes) return Promise.reject(new WakeBusyError());
      if (cold && (coldWakesByUser.get(owner) ?? 0) >= perUserColdWakes) {
        return Promise.reject(new WakeBusyError());
      }
      if (cold) {
        coldWakes++;
        coldWakesByUser.set(owner, (coldWakesByUser.get(owner) ?? 0) + 1);
      }
      const p = (async () => {
        try {
          const r = await vmm.ensureHot(id);
          crashPoint("thermal.start.after-vmm-wake");
          const info = engines.get(id);
          if (info !== undefined)
            engines.set(id, { ...info, thermal: "hot", status: "running", thermalSince: now() });
          touch(id, now());
          if (r.from !== "hot") {
            const row = rows.get(id);
            if (row !== undefined && row.status !== "running") {
              rows.set(id, { ...row, status: "running" });
              // The vmm syncs its own rows too; this covers a row marked unknown by the policy.
              await store.setStatus(id, "running").catch(() => undefined);
            }
            emit([
              {
                type: "thermal.wake",
                sandboxId: id,
                userId: userOf(id),
                meta: { from_state: r.from, wake_ms: Math.round(r.wakeMs * 100) / 100 },
              },
            ]);
          }
          return r;
        } finally {
          if (cold) {
            coldWakes--;
            const held = (coldWakesByUser.get(owner) ?? 1) - 1;
            if (held > 0) coldWakesByUser.set(owner, held);
            else coldWakesByUser.delete(owner);
          }
          wakes.delete(id);
        }
      })();
      wakes.set(id, p);
      return p;
    },

    get(id) {
      const row = rows.get(id);
      const info = engines.get(id);
      if (row === undefined && info === undefined) return undefined;
      return {
        sandboxId: id,
        thermal: info?.thermal ?? "",
        thermalSince: info?.thermalSince ?? 0,
        status: row?.status ?? info?.status ?? "",
        keepHot: row?.keepHot ?? false,
        lastActivity: lastActivity.get(id) ?? 0,
        pin: pins.pinOf(id, now()),
        activityFailures: activityFailures.get(id),
        snapshotFailures: snapshotFailures.get(id),
      };
    },

    list() {
      const ids = new Set([...rows.keys(), ...engines.keys()]);
      return [...ids].flatMap((id) => {
        const v = manager.get(id);
        return v === undefined ? [] : [v];
      });
    },

    counts() {
      const out = { hot: 0, warm: 0, cold: 0, unknown: 0 };
      for (const [id, row] of rows) {
        const info = engines.get(id);
        if (info === undefined || row.status === "unknown" || info.status === "unknown") out.unknown++;
        else out[info.thermal]++;
      }
      return out;
    },

    readiness: () => ({ vmm: vmmError, store: storeError }),

    async snapshotAll(parallelism) {
      draining = true;
      await manager.stop();
      await Promise.allSettled([...wakes.values()]);
      const targets = (await vmm.list()).filter((s) => s.status === "running");
      const snapshotted: string[] = [];
      const failed: string[] = [];
      const queue = [...targets];
      const worker = async () => {
        for (let s = queue.shift(); s !== undefined; s = queue.shift()) {
          let lastError = "";
          let done = false;
          // One retry, then the sandbox is left running (v1 R2).
          for (let attempt = 0; attempt < 2 && !done; attempt++) {
            try {
              setEngine(await vmm.stop(s.id));
              done = true;
            } catch (e) {
              lastError = ConnectError.from(e).rawMessage;
            }
          }
          if (done) {
            snapshotted.push(s.id);
            emit([
              { type: "thermal.snapshot", sandboxId: s.id, userId: s.userId, meta: { reason: "shutdown" } },
              { type: "sandbox.stopped", sandboxId: s.id, userId: s.userId, meta: { reason: "shutdown" } },
            ]);
          } else {
            failed.push(s.id);
            logger.warn("shutdown snapshot failed; sandbox left running", {
              sandbox_id: s.id,
              error: lastError,
            });
          }
        }
      };
      await Promise.all(Array.from({ length: Math.max(1, parallelism) }, worker));
      return { snapshotted, failed };
    },

    async stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      stopWatching?.();
      // Wait for the review and every transition in flight, so none is left halfway.
      await ticking;
      await Promise.allSettled([...actions.values()]);
    },
  };
  return manager;
}
