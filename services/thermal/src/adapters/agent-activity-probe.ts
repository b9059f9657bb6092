import { createAgentClient } from "@bhatti/agent-client";
import type { AgentProbe } from "../domain/ports.js";

/** Asks a sandbox's agent for its activity (ACTIVITY_REQ) over a fresh connection. */
export function createAgentActivityProbe(): AgentProbe {
  return {
    async activity(agent, timeoutMs) {
      const client = createAgentClient({
        control: { host: agent.host, port: agent.controlPort },
        forward: { host: agent.host, port: agent.forwardPort },
        token: agent.token,
        pool: false,
      });
      try {
        const info = await client.activity({ signal: AbortSignal.timeout(timeoutMs) });
        return {
          lastActivityUnix: info.last_activity_unix,
          activeSessions: info.active_sessions,
          attachedSessions: info.attached_sessions,
        };
      } finally {
        client.close();
      }
    },
  };
}
