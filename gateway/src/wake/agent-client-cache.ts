import { type AgentClient, createAgentClient } from "@bhatti/agent-client";
import type { AgentEndpoint } from "@bhatti/proto";

/**
 * One agent client per sandbox endpoint, kept across requests so that execs reuse its
 * pre-dialed, authenticated spare connections. A changed endpoint (new address or token)
 * replaces the client.
 */
export interface AgentClientCache {
  clientFor(sandboxId: string, endpoint: AgentEndpoint): AgentClient;
  /** Drops spare connections (they are stale after a checkpoint or restore). */
  drain(sandboxId: string): void;
  /** Closes and forgets the sandbox's client (destroy). */
  remove(sandboxId: string): void;
  close(): void;
}

/**
 * How long an unused spare connection is kept. A frozen sandbox keeps its TCP connections and
 * the agent counts waiting spares as idle (its idle GC still runs), so spares are kept past the
 * default warm-after + cold-after (30 s + 30 min): the first exec after a warm wake then skips
 * the connect and AUTH into the just-thawed agent. A checkpoint or restore drops them earlier
 * (the wake controller drains on those events).
 */
export const SPARE_IDLE_MS = 35 * 60_000;

const endpointKey = (e: AgentEndpoint) => `${e.host}:${e.controlPort}:${e.forwardPort}:${e.token}`;

export function createAgentClientCache(options: { operationTimeoutMs?: number } = {}): AgentClientCache {
  const clients = new Map<string, { key: string; client: AgentClient }>();
  return {
    clientFor(sandboxId, endpoint) {
      const key = endpointKey(endpoint);
      const existing = clients.get(sandboxId);
      if (existing !== undefined && existing.key === key) return existing.client;
      existing?.client.close();
      const client = createAgentClient({
        control: { host: endpoint.host, port: endpoint.controlPort },
        forward: { host: endpoint.host, port: endpoint.forwardPort },
        token: endpoint.token,
        pool: { idleMs: SPARE_IDLE_MS },
        ...(options.operationTimeoutMs !== undefined
          ? { operationTimeoutMs: options.operationTimeoutMs }
          : {}),
      });
      clients.set(sandboxId, { key, client });
      return client;
    },
    drain: (sandboxId) => clients.get(sandboxId)?.client.drainPool(),
    remove(sandboxId) {
      clients.get(sandboxId)?.client.close();
      clients.delete(sandboxId);
    },
    close() {
      for (const { client } of clients.values()) client.close();
      clients.clear();
    },
  };
}
