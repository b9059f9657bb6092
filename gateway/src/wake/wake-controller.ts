import { type AgentClient, AgentConnectionError } from "@bhatti/agent-client";
import { ThermalState, type VmmSandbox } from "@bhatti/proto";
import type { Logger } from "@bhatti/runtime";
import { ConnectError } from "@connectrpc/connect";
import type { ServiceClients } from "../service-clients.js";
import { type AgentClientCache, createAgentClientCache } from "./agent-client-cache.js";
import { type InteractiveClients, createInteractiveClients } from "./interactive-clients.js";
import { watchVmmEvents } from "./vmm-event-watch.js";

/**
 * The one place the gateway wakes sandboxes (exec, files, sessions, shells; never list, get or
 * health). A sandbox known to be hot is answered from a local cache without any RPC; otherwise
 * `VmmService.EnsureHot` is called, once per sandbox however many requests wait for it.
 * The thermal manager extends this module: activity listeners and interactive-client counts
 * are its inputs.
 */
export interface WakeController {
  /** Wakes the sandbox if needed and returns its agent client. Records activity. */
  ensureHot(sandboxId: string): Promise<AgentClient>;
  /**
   * Runs an agent operation on a hot sandbox. If the cached endpoint turns out unreachable (the
   * sandbox was paused or restored behind the cache), the vmm is asked again and the operation
   * retried once; only connection failures are retried, never half-done operations.
   */
  withAgent<T>(sandboxId: string, op: (agent: AgentClient) => Promise<T>): Promise<T>;
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
  /** Live interactive clients per sandbox (pin sandboxes hot). */
  readonly interactive: InteractiveClients;
  close(): void;
}

export interface WakeControllerOptions {
  /** How long a hot entry is trusted while the vmm event feed is connected (events invalidate it). */
  trustWithEventsMs?: number;
  /** How long a hot entry is trusted without the event feed. */
  trustWithoutEventsMs?: number;
  /** Deadline of one EnsureHot call (a cold restore can take seconds). */
  wakeTimeoutMs?: number;
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

const thermalName: Record<number, string> = {
  [ThermalState.HOT]: "hot",
  [ThermalState.WARM]: "warm",
  [ThermalState.COLD]: "cold",
};

export function createWakeController(
  clients: ServiceClients,
  logger: Logger,
  options: WakeControllerOptions = {},
): WakeController {
  const now = options.now ?? Date.now;
  const trustWithEvents = options.trustWithEventsMs ?? 10_000;
  const trustWithoutEvents = options.trustWithoutEventsMs ?? 1_000;
  const wakeTimeoutMs = options.wakeTimeoutMs ?? 120_000;
  const agents: AgentClientCache = createAgentClientCache();
  const hot = new Map<string, HotEntry>();
  const inFlight = new Map<string, Promise<AgentClient>>();
  const activity = new Map<string, number>();
  const listeners = new Set<(sandboxId: string) => void>();
  let eventsLive = false;

  const touch = (sandboxId: string) => {
    activity.set(sandboxId, now());
    for (const l of listeners) {
      try {
        l(sandboxId);
      } catch (e) {
        logger.warn("activity listener failed", { error: e });
      }
    }
  };
  const interactive = createInteractiveClients(touch);

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

  const invalidate = (sandboxId: string) => {
    if (hot.delete(sandboxId)) agents.drain(sandboxId);
  };

  /** After a real wake, the row goes back to running and the wake is recorded (v1 §3.3). */
  const recordWake = async (sandboxId: string, from: ThermalState, wakeMs: number) => {
    try {
      const { sandbox } = await clients.store.updateSandbox({
        anyUser: true,
        sandbox: sandboxId,
        status: "running",
        thermalState: "hot",
      });
      await clients.store.appendEvents({
        events: [
          {
            type: "thermal.wake",
            userId: sandbox?.userId ?? "",
            sandboxId,
            metaJson: JSON.stringify({ from_state: thermalName[from] ?? "unknown", wake_ms: wakeMs }),
          },
        ],
      });
    } catch (e) {
      logger.warn("recording a wake failed", { sandbox_id: sandboxId, error: e });
    }
  };

  const wake = (sandboxId: string): Promise<AgentClient> => {
    let pending = inFlight.get(sandboxId);
    if (pending !== undefined) return pending;
    pending = (async () => {
      try {
        const res = await clients.vmm.ensureHot({ id: sandboxId }, { timeoutMs: wakeTimeoutMs });
        if (res.sandbox === undefined) throw new ConnectError("vmm returned no sandbox", 13);
        const agent = remember(res.sandbox);
        if (res.from !== ThermalState.HOT && res.from !== ThermalState.UNSPECIFIED) {
          void recordWake(sandboxId, res.from, res.wakeMs);
        }
        return agent;
      } catch (e) {
        const err = ConnectError.from(e);
        throw new ConnectError(`wake sandbox: ${err.rawMessage}`, err.code, undefined, undefined, e);
      } finally {
        inFlight.delete(sandboxId);
      }
    })();
    inFlight.set(sandboxId, pending);
    return pending;
  };

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
      if (!live) for (const id of [...hot.keys()]) invalidate(id);
    },
    onCooled: invalidate,
    onDestroyed(sandboxId) {
      hot.delete(sandboxId);
      agents.remove(sandboxId);
    },
  });

  return {
    ensureHot,
    async withAgent(sandboxId, op) {
      const agent = await ensureHot(sandboxId);
      try {
        return await op(agent);
      } catch (e) {
        if (!isUnreachable(e)) throw e;
        logger.debug("agent unreachable; asking the vmm again", { sandbox_id: sandboxId });
        invalidate(sandboxId);
        return op(await wake(sandboxId));
      }
    },
    markHot(sandbox) {
      remember(sandbox);
      touch(sandbox.id);
    },
    markNotHot: invalidate,
    forget(sandboxId) {
      hot.delete(sandboxId);
      activity.delete(sandboxId);
      agents.remove(sandboxId);
    },
    touch,
    lastActivity: (sandboxId) => activity.get(sandboxId),
    onActivity(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    interactive,
    close() {
      stopWatching();
      agents.close();
      hot.clear();
    },
  };
}
