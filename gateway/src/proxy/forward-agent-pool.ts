import * as http from "node:http";
import type { Duplex } from "node:stream";

/**
 * Keep-alive HTTP agents per (sandbox, port) whose connections are forward channels through
 * the sandbox agent: a new TCP connection inside gVisor costs milliseconds (over 100 ms on a
 * loaded host), so connections to the app are reused across requests, as a browser reuses its
 * own. A sandbox's connections are dropped as soon as it stops being hot (`dropSandbox`, from
 * the wake controller), so none is used across a pause or a checkpoint; one that still turns
 * out dead is retried by the engine (GET/HEAD only). Idle ones close after `idleMs` or earlier
 * when the app announces a shorter keep-alive (Node's agent honours `Keep-Alive: timeout=`).
 */
export interface ForwardAgentPool {
  agentFor(sandboxId: string, port: number): http.Agent;
  /** Closes every pooled connection into the sandbox (it was paused, stopped or destroyed). */
  dropSandbox(sandboxId: string): void;
  close(): void;
}

class ForwardAgent extends http.Agent {
  readonly #dial: () => Promise<Duplex>;

  constructor(dial: () => Promise<Duplex>, idleMs: number) {
    super({ keepAlive: true, maxSockets: 64, maxFreeSockets: 64, timeout: idleMs });
    this.#dial = dial;
  }

  override createConnection(
    _options: unknown,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | undefined {
    // Node's agent waits for the callback when nothing is returned.
    this.#dial().then(
      (socket) => callback?.(null, socket),
      (err: unknown) => callback?.(err as Error, undefined as unknown as Duplex),
    );
    return undefined;
  }
}

export function createForwardAgentPool(
  dial: (sandboxId: string, port: number) => Promise<Duplex>,
  options: { idleMs: number; maxAgents?: number },
): ForwardAgentPool {
  const maxAgents = options.maxAgents ?? 1_000;
  const agents = new Map<string, http.Agent>();
  return {
    agentFor(sandboxId, port) {
      const key = `${sandboxId}:${port}`;
      let agent = agents.get(key);
      if (agent !== undefined) {
        agents.delete(key);
      } else {
        if (agents.size >= maxAgents) {
          const [oldestKey, oldest] = agents.entries().next().value ?? [];
          if (oldestKey !== undefined) agents.delete(oldestKey);
          oldest?.destroy();
        }
        agent = new ForwardAgent(() => dial(sandboxId, port), options.idleMs);
      }
      // Re-inserted on use: the first key is the least recently used.
      agents.set(key, agent);
      return agent;
    },
    dropSandbox(sandboxId) {
      const prefix = `${sandboxId}:`;
      for (const [key, agent] of agents) {
        if (!key.startsWith(prefix)) continue;
        agents.delete(key);
        agent.destroy();
      }
    },
    close() {
      for (const agent of agents.values()) agent.destroy();
      agents.clear();
    },
  };
}
