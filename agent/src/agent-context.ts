import type { ActivityClock } from "./activity.js";
import type { ExecIdentity } from "./identity.js";
import type { AgentLogger } from "./logger.js";
import type { SessionRegistry } from "./sessions/session-registry.js";

/** Everything a request handler needs to know about this agent. */
export interface AgentContext {
  /** "" disables auth. */
  token: string;
  authTimeoutMs: number;
  /** Commands run as this user unless the request asks for root and `allowRoot` is set. */
  user: ExecIdentity;
  allowRoot: boolean;
  /** Default working directory. */
  workdir: string;
  /** Environment inherited by every command before the defaults (standalone mode: the agent's own). */
  baseEnv: Readonly<Record<string, string | undefined>>;
  /** Boot-config env plus secrets. */
  configEnv: Readonly<Record<string, string>>;
  activity: ActivityClock;
  sessions: SessionRegistry;
  log: AgentLogger;
}
