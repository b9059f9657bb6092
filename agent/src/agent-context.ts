import type { Socket } from "node:net";
import type { ActivityClock } from "./activity.js";
import type { HostnameHelper } from "./claim/hostname-helper.js";
import type { ExecDefaults } from "./exec/command-spec.js";
import type { ResidentSpawner } from "./exec/resident-spawner.js";
import type { AgentLogger } from "./logger.js";
import type { SessionRegistry } from "./sessions/session-registry.js";

/** Everything a request handler needs to know about this agent: the exec defaults and the rest. */
export interface AgentContext extends ExecDefaults {
  /** "" disables auth. Replaced once by a CLAIM_REQ in a template (claim/claim.ts). */
  token: string;
  /** Booted as a template and not yet claimed: one CLAIM_REQ is accepted. */
  claimable?: boolean;
  /** A template's pre-forked `hostname` runner (claim/hostname-helper.ts). */
  hostnameHelper?: HostnameHelper;
  /** Starts one-shot and detached commands without forking Node (exec/resident-spawner.ts). */
  spawner?: ResidentSpawner;
  authTimeoutMs: number;
  /**
   * A control connection is authenticated and waits for its request (`true`: a host pool's idle
   * spare) or got it (`false`). An idle spare does not hold off the idle GC (idle-gc.ts).
   */
  spareWaiting?: (socket: Socket, waiting: boolean) => void;
  activity: ActivityClock;
  sessions: SessionRegistry;
  log: AgentLogger;
}
