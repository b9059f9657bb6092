import { type AgentClient, AgentConnectionError } from "@bhatti/agent-client";
import { ThermalState, type VmmSandbox, thermalName } from "@bhatti/proto";
import { type Logger, createSingleFlight, isServiceUnreachable } from "@bhatti/runtime";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceClients } from "../service-clients.js";
import { type ActivityReporter, createActivityReporter } from "./activity-reporter.js";
import { type AgentClientCache, createAgentClientCache } from "./agent-client-cache.js";
import { type InteractiveClients, createInteractiveClients } from "./interactive-clients.js";
import { watchVmmEvents } from "./vmm-event-watch.js";

/**
 * The one place the gateway wakes sandboxes (exec, files, sessions, shells; never list, get or
 * health). A sandbox known to be hot is answered from a local cache without any RPC; otherwise
 * `ThermalService.Wake` is called, once per sandbox however many requests wait for it. The
 * thermal service bounds concurrent cold wakes (past the bound: 503 with Retry-After) and
 * records each wake. The gateway asks the vmm directly only to thaw a sandbox its event feed
 * says is frozen (a thaw needs no bound and cannot restore: one hop less on the warm path) and
 * while the thermal service is unreachable. Agent spare connections survive a freeze; they are
 * dropped when the sandbox may have been checkpointed or restored.
 *
 * It is also the thermal policy's eyes: every touch (API call, proxied traffic) and the pins
 * (live interactive clients, requests in progress) are reported to the thermal service in
 * batches, never on the request path. A sandbox cooled while a request or a client was using
 * it (the pause raced the request) is woken again at once.
 */
export interface WakeController {
  /** Wakes the sandbox if needed and returns its agent client. Records activity. */
  ensureHot(sandboxId: string): Promise<AgentClient>;
  /**
   * Runs an agent operation on a hot sandbox. If the cached endpoint turns out unreachable (the
   * sandbox was paused or restored behind the cache), the vmm is asked again and the operation
   * retried once; only connection failures are retried, never half-done operations. With a
   * `signal` (the caller's request), an abort stops waiting for the wake and releases the hold
   * at once; the operation itself gets the signal from the caller.
   */
  withAgent<T>(
    sandboxId: string,
    op: (agent: AgentClient) => Promise<T>,
    options?: { signal?: AbortSignal },
  ): Promise<T>;
  /** Records a sandbox the gateway just created or started (hot, with its endpoint). */
  markHot(sandbox: VmmSandbox): void;
  /** The sandbox is no longer hot (stopped); the next use asks the vmm. */
  markNotHot(sandboxId: string): void;
  /** The sandbox is gone: closes its agent client. */
  forget(sandboxId: string): void;
  /** Records activity (an API touch) without waking anything. */
  touch(sandboxId: string): void;
  /** Unix ms of the last activity the gateway saw, if any. */
  lastActivity(sandboxId: string): number | undefined;
  /** Called on every activity; returns an unsubscribe function. */
  onActivity(listener: (sandboxId: string) => void): () => void;
  /**
   * Called when a sandbox stops being hot (paused, checkpointed, stopped, destroyed or no longer
   * trusted), so connections into it can be dropped; returns an unsubscribe function.
   */
  onLeftHot(listener: (sandboxId: string) => void): () => void;
  /** Live interactive clients per sandbox (pin sandboxes hot). */
  readonly interactive: InteractiveClients;
  /**
   * Marks a request in progress until the returned function is called (once): it pins the
   * sandbox hot, so a long exec is never frozen under its caller. `withAgent` holds for its call.
   */
  hold(sandboxId: string): () => void;
  /** Requests in progress per sandbox. */
  inFlight(sandboxId: string): number;
  close(): void;
}

export interface WakeControllerOptions {
  /** How long a hot entry is trusted while the vmm event feed is connected (events invalidate it). */
  trustWithEventsMs?: number;
  /** How long a hot entry is trusted without the event feed. */
  trustWithoutEventsMs?: number;
  /** Deadline of one EnsureHot call (a cold restore can take seconds). */
  wakeTimeoutMs?: number;
  /** Batching delay of activity reports to the thermal service. */
  reportFlushMs?: number;
  /** Deadline of one agent request (see AgentClientOptions.operationTimeoutMs). */
  agentOperationTimeoutMs?: number;
  now?: () => number;
}

interface HotEntry {
  readonly agent: AgentClient;
  readonly trustedUntil: number;
}

const unreachableCodes = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ETIMEDOUT"]);

/** A connection that never reached the agent: safe to retry after asking the vmm again. */
function isUnreachable(e: unknown): boolean {
  return (
    e instanceof AgentConnectionError &&
    ((e.code !== undefined && unreachableCodes.has(e.code)) || e.message.startsWith("cannot connect"))
  );
}

const MAX_HOLD_MS = 86_400_000 + 60_000;
/** Longest a wake this gateway did waits to be recorded while requests still use the sandbox. */
const RECORD_DELAY_MAX_MS = 1_000;

/**
 * `promise`, or a rejection as soon as `signal` aborts. The wake itself goes on (other requests
 * may share it); only this caller stops waiting, so its hold is released at once.
 */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortReason(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException("request aborted", "AbortError");
}

/** Thrown when too many cold wakes are in flight: REST answers 503 with Retry-After. */
export class WakeBusyError extends ConnectError {
  readonly retryAfterSec = 2;
  constructor() {
    super("server busy, retry shortly", Code.Unavailable, { "retry-after": "2" });
  }
}

export function createWakeController(
  clients: ServiceClients,
  logger: Logger,
  options: WakeControllerOptions = {},
): WakeController {
  const now = options.now ?? Date.now;
  const trustWithEvents = options.trustWithEventsMs ?? 10_000;
  const trustWithoutEvents = options.trustWithoutEventsMs ?? 1_000;
  const wakeTimeoutMs = options.wakeTimeoutMs ?? 120_000;
  const agents: AgentClientCache = createAgentClientCache(
    options.agentOperationTimeoutMs !== undefined
      ? { operationTimeoutMs: options.agentOperationTimeoutMs }
      : {},
  );
  const hot = new Map<string, HotEntry>();
  // Concurrent requests for one sandbox share its wake.
  const wakes = createSingleFlight<AgentClient>();
  const activity = new Map<string, number>();
  const listeners = new Set<(sandboxId: string) => void>();
  const leftHotListeners = new Set<(sandboxId: string) => void>();
  const leftHot = (sandboxId: string) => {
    for (const l of leftHotListeners) {
      try {
        l(sandboxId);
      } catch (e) {
        logger.warn("left-hot listener failed", { error: e });
      }
    }
  };
  const busy = new Map<string, number>();
  // Paused (frozen) per the vmm's feed, with nothing since: its agent connections survive.
  const warm = new Set<string>();
  let eventsLive = false;

  const reporter: ActivityReporter = createActivityReporter(clients.thermal, logger, {
    pins: () => {
      const ids = new Set([...interactive.pinned(), ...busy.keys()]);
      return [...ids].map((sandboxId) => ({
        sandboxId,
        interactiveClients: interactive.count(sandboxId),
        inFlight: busy.get(sandboxId) ?? 0,
      }));
    },
    ...(options.reportFlushMs !== undefined ? { flushDelayMs: options.reportFlushMs } : {}),
  });

  const hold = (sandboxId: string): (() => void) => {
    busy.set(sandboxId, (busy.get(sandboxId) ?? 0) + 1);
    let released = false;
    // A holder that never releases (a bug) must not pin the sandbox for ever: exec's longest deadline.
    const expiry = setTimeout(() => release(), MAX_HOLD_MS);
    expiry.unref();
    const release = () => {
      if (released) return;
      released = true;
      clearTimeout(expiry);
      const n = (busy.get(sandboxId) ?? 1) - 1;
      if (n <= 0) {
        busy.delete(sandboxId);
        flushRecord(sandboxId);
      } else busy.set(sandboxId, n);
      // The end of a request is activity too (a long exec restarts the idle clock as it ends).
      touch(sandboxId);
    };
    return release;
  };

  const touch = (sandboxId: string) => {
    const at = now();
    activity.set(sandboxId, at);
    reporter.touch(sandboxId, at);
    for (const l of listeners) {
      try {
        l(sandboxId);
      } catch (e) {
        logger.warn("activity listener failed", { error: e });
      }
    }
  };
  const interactive = createInteractiveClients((sandboxId) => {
    touch(sandboxId);
    reporter.pinsChanged();
  });

  const remember = (sandbox: VmmSandbox): AgentClient => {
    if (sandbox.agent === undefined || sandbox.agent.host === "") {
      throw new ConnectError(`sandbox ${sandbox.id} has no agent endpoint`, 14 /* Unavailable */);
    }
    const agent = agents.clientFor(sandbox.id, sandbox.agent);
    hot.set(sandbox.id, {
      agent,
      trustedUntil: now() + (eventsLive ? trustWithEvents : trustWithoutEvents),
    });
    return agent;
  };

  // Spare agent connections survive a pause (the sandbox is only frozen) but not a checkpoint
  // or restore: drop them whenever the sandbox may have gone cold, even if this gateway had
  // already stopped trusting it.
  // (The proxy's pooled connections to apps are dropped on a pause too, via leftHot: an app's
  // own keep-alive timer may close one the moment it thaws, under a request.)
  const invalidate = (sandboxId: string, to: "warm" | "cold" = "cold") => {
    hot.delete(sandboxId);
    leftHot(sandboxId);
    if (to === "warm") {
      warm.add(sandboxId);
      return;
    }
    warm.delete(sandboxId);
    agents.drain(sandboxId);
  };

  /** After a real wake, the row goes back to running and the wake is recorded (v1 §3.3). */
  const recordWake = async (sandboxId: string, from: ThermalState, wakeMs: number) => {
    try {
      const { sandbox } = await clients.store.updateSandbox({
        anyUser: true,
        sandbox: sandboxId,
        status: "running",
        thermalState: ThermalState.HOT,
      });
      await clients.store.appendEvents({
        events: [
          {
            type: "thermal.wake",
            userId: sandbox?.userId ?? "",
            sandboxId,
            metaJson: JSON.stringify({ from_state: thermalName(from) ?? "unknown", wake_ms: wakeMs }),
          },
        ],
      });
    } catch (e) {
      logger.warn("recording a wake failed", { sandbox_id: sandboxId, error: e });
    }
  };

  /**
   * Records a wake this gateway did once the requests using the sandbox are done (or after
   * RECORD_DELAY_MAX_MS): the two store writes then do not compete for the CPU with the command
   * that the wake was for (bench/warmpath/results-2026-12-03.txt).
   */
  const pendingRecords = new Map<string, { from: ThermalState; wakeMs: number; timer: NodeJS.Timeout }>();
  const flushRecord = (sandboxId: string) => {
    const p = pendingRecords.get(sandboxId);
    if (p === undefined) return;
    pendingRecords.delete(sandboxId);
    clearTimeout(p.timer);
    void recordWake(sandboxId, p.from, p.wakeMs);
  };
  /** The sandbox is gone: its row and events are deleted with it. */
  const dropRecord = (sandboxId: string) => {
    clearTimeout(pendingRecords.get(sandboxId)?.timer);
    pendingRecords.delete(sandboxId);
  };
  const recordAfterUse = (sandboxId: string, from: ThermalState, wakeMs: number) => {
    // A second wake before the first was recorded: record the first now, keep the order.
    flushRecord(sandboxId);
    if ((busy.get(sandboxId) ?? 0) === 0) {
      void recordWake(sandboxId, from, wakeMs);
      return;
    }
    const timer = setTimeout(() => flushRecord(sandboxId), RECORD_DELAY_MAX_MS);
    timer.unref();
    pendingRecords.set(sandboxId, { from, wakeMs, timer });
  };

  /** Fallback while the thermal service is unreachable: the vmm wakes, the gateway records it. */
  const wakeThroughVmm = async (sandboxId: string) => {
    const res = await clients.vmm.ensureHot({ id: sandboxId }, { timeoutMs: wakeTimeoutMs });
    if (res.from !== ThermalState.HOT && res.from !== ThermalState.UNSPECIFIED) {
      recordAfterUse(sandboxId, res.from, res.wakeMs);
    }
    return res;
  };

  /**
   * A sandbox the feed says is frozen is thawed by the vmm directly (`EnsureHot` with
   * `warm_only`, which never restores: a sandbox that went cold meanwhile is refused, and that
   * wake goes through the thermal service and its cold-wake bound). The thermal service learns
   * of the thaw from the same feed; the gateway records the wake as the thermal service would.
   * Undefined: use the thermal service.
   */
  const thawDirectly = async (sandboxId: string) => {
    try {
      const res = await clients.vmm.ensureHot({ id: sandboxId, warmOnly: true });
      if (res.from === ThermalState.WARM) recordAfterUse(sandboxId, res.from, res.wakeMs);
      return res;
    } catch (e) {
      logger.debug("direct thaw refused; waking through the thermal service", {
        sandbox_id: sandboxId,
        error: ConnectError.from(e).rawMessage,
      });
      return undefined;
    }
  };

  const wake = (sandboxId: string): Promise<AgentClient> =>
    wakes.do(sandboxId, async () => {
      const knownWarm = eventsLive && warm.has(sandboxId);
      try {
        let res: { sandbox?: VmmSandbox | undefined; from: ThermalState } | undefined;
        if (knownWarm) res = await thawDirectly(sandboxId);
        if (res === undefined) {
          try {
            res = await clients.thermal.wake({ sandboxId }, { timeoutMs: wakeTimeoutMs });
          } catch (e) {
            const err = ConnectError.from(e);
            if (err.code === Code.ResourceExhausted) throw new WakeBusyError();
            // Only when the thermal service itself is unreachable (down or restarting), not refusing.
            if (!isServiceUnreachable(err)) throw err;
            logger.debug("thermal service unreachable; waking through the vmm", { sandbox_id: sandboxId });
            res = await wakeThroughVmm(sandboxId);
          }
        }
        if (res.sandbox === undefined) throw new ConnectError("vmm returned no sandbox", 13);
        warm.delete(sandboxId);
        // Spares dialed before a restore are stale; start that hot period clean. A thaw (or an
        // already hot sandbox) keeps them, unless the feed was down and a restore may have been missed.
        const keptAcross = res.from === ThermalState.WARM || res.from === ThermalState.HOT;
        if (!keptAcross || !eventsLive) agents.drain(sandboxId);
        return remember(res.sandbox);
      } catch (e) {
        if (e instanceof WakeBusyError) throw e;
        const err = ConnectError.from(e);
        throw new ConnectError(`wake sandbox: ${err.rawMessage}`, err.code, undefined, undefined, e);
      }
    });

  const ensureHot = (sandboxId: string): Promise<AgentClient> => {
    touch(sandboxId);
    const entry = hot.get(sandboxId);
    if (entry !== undefined && entry.trustedUntil > now()) return Promise.resolve(entry.agent);
    return wake(sandboxId);
  };

  const stopWatching = watchVmmEvents(clients, logger, {
    onLive(live) {
      eventsLive = live;
      // Entries trusted under a feed that dropped must not outlive the shorter window.
      if (!live) {
        for (const id of [...hot.keys()]) invalidate(id);
        // Without the feed, a checkpoint of a warm sandbox would go unseen.
        for (const id of [...warm]) invalidate(id);
      }
    },
    onCooled(sandboxId, to) {
      invalidate(sandboxId, to);
      // The pause raced a request or a live client: wake it again rather than leave it frozen.
      if ((busy.get(sandboxId) ?? 0) > 0 || interactive.count(sandboxId) > 0) {
        wake(sandboxId).catch((e: unknown) =>
          logger.warn("re-waking a sandbox in use failed", {
            sandbox_id: sandboxId,
            error: ConnectError.from(e).rawMessage,
          }),
        );
      }
    },
    onDestroyed(sandboxId) {
      dropRecord(sandboxId);
      hot.delete(sandboxId);
      warm.delete(sandboxId);
      agents.remove(sandboxId);
      leftHot(sandboxId);
    },
  });

  return {
    ensureHot,
    async withAgent(sandboxId, op, o = {}) {
      const release = hold(sandboxId);
      try {
        const agent = await untilAborted(ensureHot(sandboxId), o.signal);
        try {
          return await op(agent);
        } catch (e) {
          if (!isUnreachable(e) || o.signal?.aborted === true) throw e;
          logger.debug("agent unreachable; asking the vmm again", { sandbox_id: sandboxId });
          invalidate(sandboxId);
          return await op(await untilAborted(wake(sandboxId), o.signal));
        }
      } finally {
        release();
      }
    },
    markHot(sandbox) {
      remember(sandbox);
      touch(sandbox.id);
    },
    markNotHot: (sandboxId) => invalidate(sandboxId),
    forget(sandboxId) {
      dropRecord(sandboxId);
      hot.delete(sandboxId);
      warm.delete(sandboxId);
      activity.delete(sandboxId);
      agents.remove(sandboxId);
      leftHot(sandboxId);
    },
    touch,
    lastActivity: (sandboxId) => activity.get(sandboxId),
    onActivity(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    onLeftHot(listener) {
      leftHotListeners.add(listener);
      return () => leftHotListeners.delete(listener);
    },
    interactive,
    hold,
    inFlight: (sandboxId) => busy.get(sandboxId) ?? 0,
    close() {
      for (const id of [...pendingRecords.keys()]) flushRecord(id);
      reporter.close();
      stopWatching();
      agents.close();
      hot.clear();
    },
  };
}
