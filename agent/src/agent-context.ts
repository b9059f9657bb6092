import type { ActivityClock } from "./activity.js";
import type { ExecDefaults } from "./exec/command-spec.js";
import type { AgentLogger } from "./logger.js";
import type { SessionRegistry } from "./sessions/session-registry.js";

/** Everything a request handler needs to know about this agent: the exec defaults and the rest. */
export interface AgentContext extends ExecDefaults {
  /** "" disables auth. */
  token: string;
  authTimeoutMs: number;
  activity: ActivityClock;
  sessions: SessionRegistry;
  log: AgentLogger;
}
