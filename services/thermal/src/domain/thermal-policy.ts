/**
 * The thermal policy as pure decisions (v1 §3.2), so it can be read and tested without any
 * process: what to do with one sandbox at one instant, given what is known about it.
 */

export type Thermal = "hot" | "warm" | "cold";

export interface ThermalThresholds {
  /** Idle time after which a hot sandbox is paused. */
  readonly warmAfterMs: number;
  /** Time warm before a cold checkpoint. */
  readonly coldAfterMs: number;
}

export interface PolicyInput {
  /** The store row's status: only `running` rows are cooled. */
  readonly status: string;
  /** The engine's state, undefined when the engine does not know the sandbox. */
  readonly thermal: Thermal | undefined;
  /** Unix ms the engine entered `thermal`. */
  readonly thermalSince: number;
  readonly keepHot: boolean;
  /** Unix ms of the latest activity the host knows of. */
  readonly lastActivity: number;
  /** Live interactive clients or requests in progress. */
  readonly pinned: boolean;
  /** Consecutive failed snapshots: a failed one is retried on the next review. */
  readonly snapshotFailures: number;
}

export type Decision =
  | { readonly kind: "keep"; readonly reason: string }
  /** Hot and idle by the host's clock: ask the agent before pausing (the slow path). */
  | { readonly kind: "probe"; readonly idleMs: number }
  /** Warm long enough: checkpoint to cold. This path never asks the agent. */
  | { readonly kind: "snapshot"; readonly warmForMs: number };

export function decide(s: PolicyInput, now: number, t: ThermalThresholds): Decision {
  if (s.status !== "running") return { kind: "keep", reason: `status ${s.status}` };
  if (s.thermal === undefined) return { kind: "keep", reason: "not known to the engine" };
  if (s.keepHot) return { kind: "keep", reason: "keep_hot" };
  if (s.pinned) return { kind: "keep", reason: "pinned by a live client" };
  switch (s.thermal) {
    case "hot": {
      const idleMs = now - s.lastActivity;
      // Fast path: recent host-side activity settles it without asking the agent.
      if (idleMs < t.warmAfterMs) return { kind: "keep", reason: "active" };
      return { kind: "probe", idleMs };
    }
    case "warm": {
      // The cold clock starts at the pause (or at a later touch that did not wake it).
      const warmForMs = now - Math.max(s.thermalSince, s.lastActivity);
      if (s.snapshotFailures > 0 || warmForMs >= t.coldAfterMs) return { kind: "snapshot", warmForMs };
      return { kind: "keep", reason: "warm, not yet due" };
    }
    case "cold":
      return { kind: "keep", reason: "cold" };
  }
}

/** What the guest agent reports (ACTIVITY_RESP). */
export interface AgentActivity {
  readonly lastActivityUnix: number;
  readonly activeSessions: number;
  readonly attachedSessions: number;
}

export type ProbeDecision =
  | { readonly kind: "pause"; readonly idleMs: number }
  | { readonly kind: "keep"; readonly reason: string; readonly lastActivity: number };

/**
 * After the agent answered: pause only if neither the host nor the guest saw activity within
 * `warmAfterMs` and no session is attached. The guest's clock has one-second resolution.
 */
export function decideAfterProbe(
  agent: AgentActivity,
  hostLastActivity: number,
  now: number,
  t: ThermalThresholds,
): ProbeDecision {
  const lastActivity = Math.max(hostLastActivity, agent.lastActivityUnix * 1000);
  if (agent.attachedSessions > 0) return { kind: "keep", reason: "attached session", lastActivity };
  const idleMs = now - lastActivity;
  if (idleMs < t.warmAfterMs) return { kind: "keep", reason: "guest active", lastActivity };
  return { kind: "pause", idleMs };
}

/** Consecutive activity-query failures that force a pause (about 100 s at the default tick). */
export const FORCE_PAUSE_AFTER_FAILURES = 10;
/** Consecutive snapshot failures that mark a sandbox unknown. */
export const UNKNOWN_AFTER_SNAPSHOT_FAILURES = 3;
