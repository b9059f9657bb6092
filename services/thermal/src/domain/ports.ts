import type { VmmSandbox } from "@bhatti/proto";
import type { AgentActivity, Thermal } from "./thermal-policy.js";

/** What the thermal manager needs from the outside world; adapters implement these. */

/** The engine's view of one sandbox (in-memory in the vmm, never wakes anything). */
export interface EngineSandbox {
  readonly id: string;
  readonly userId: string;
  readonly thermal: Thermal;
  readonly status: "running" | "stopped" | "unknown";
  readonly thermalSince: number;
  readonly agent: AgentAddress | undefined;
}

export interface AgentAddress {
  readonly host: string;
  readonly controlPort: number;
  readonly forwardPort: number;
  readonly token: string;
}

export interface EngineWake {
  readonly sandbox: VmmSandbox;
  readonly from: Thermal;
  readonly wakeMs: number;
}

export type EngineEventKind = "cooled" | "woke" | "destroyed" | "changed";

export interface VmmPort {
  list(): Promise<EngineSandbox[]>;
  pause(id: string): Promise<EngineSandbox>;
  /**
   * Cold checkpoint; on failure the engine keeps the sandbox alive (warm). `onlyIfWarm`: a
   * sandbox the engine finds hot is returned as it is (woken since it was seen warm).
   */
  stop(id: string, options?: { onlyIfWarm?: boolean }): Promise<EngineSandbox>;
  ensureHot(id: string): Promise<EngineWake>;
  /** Follows lifecycle events (reconnecting); returns the stop function. */
  watch(
    onEvent: (sandboxId: string, kind: EngineEventKind, thermal: Thermal | undefined) => void,
  ): () => void;
}

/** The store row fields the policy reads. */
export interface SandboxRow {
  readonly id: string;
  readonly userId: string;
  readonly status: string;
  readonly keepHot: boolean;
  /** Unix ms; 0 when unset. */
  readonly lastActivityAt: number;
}

export interface ThermalEvent {
  readonly type:
    | "thermal.pause"
    | "thermal.force_pause"
    | "thermal.snapshot"
    | "thermal.snapshot_failed"
    | "thermal.wake"
    | "sandbox.stopped";
  readonly sandboxId: string;
  readonly userId: string;
  readonly meta: Record<string, unknown>;
}

export interface StorePort {
  listSandboxes(): Promise<SandboxRow[]>;
  /** Persists the latest activity so a restarted thermal service continues its timers. */
  saveLastActivity(entries: ReadonlyMap<string, number>): Promise<void>;
  setStatus(id: string, status: "running" | "unknown"): Promise<void>;
  appendEvents(events: readonly ThermalEvent[]): Promise<void>;
}

export interface AgentProbe {
  /** ACTIVITY_REQ with a deadline; rejects on any failure. */
  activity(agent: AgentAddress, timeoutMs: number): Promise<AgentActivity>;
}
