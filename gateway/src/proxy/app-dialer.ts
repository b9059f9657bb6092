import { type Socket, connect } from "node:net";
import type { Duplex } from "node:stream";
import type { AgentClient } from "@bhatti/agent-client";
import type { WakeController } from "../wake/wake-controller.js";

/**
 * Connections from the proxy to an app inside a sandbox. The app is dialed directly at the
 * sandbox's own address (the one the vmm recorded for it, where its agent listens): the host
 * reaches every port of its sandboxes, and this skips the agent's byte relay inside gVisor,
 * which costs milliseconds per request. An app bound to 127.0.0.1 only (Vite's default) refuses
 * that dial; then it is reached through the agent's forward port (127.0.0.1:port inside the
 * sandbox), and the refusal is remembered per (sandbox, port) for a while, so later requests go
 * straight to the agent. After `retryDirectMs` the direct dial is tried again (the app may have
 * rebound to 0.0.0.0). Either way the sandbox is woken first (wake.withAgent).
 */
export interface AppDialer {
  dial(sandboxId: string, port: number, signal?: AbortSignal): Promise<Duplex>;
  /** Forgets what was learned about a published port (unpublish). */
  forget(sandboxId: string, port: number): void;
}

export interface AppDialerOptions {
  /** How long a refused direct dial sends a (sandbox, port) through the agent. */
  retryDirectMs?: number;
  /** Bound of the remembered refusals (least recently used go first). */
  maxEntries?: number;
  /** Deadline of a direct connect; past it the agent's forward port is used. */
  connectTimeoutMs?: number;
  now?: () => number;
}

interface Refusal {
  /** The address that refused: a sandbox restored at another address is tried directly again. */
  readonly host: string;
  readonly until: number;
}

function connectDirect(host: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, noDelay: true, allowHalfOpen: true });
    const fail = (err: Error) => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(`connect timeout after ${timeoutMs} ms`)), timeoutMs);
    const onAbort = () => fail(new DOMException("request aborted", "AbortError"));
    const cleanup = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      socket.off("error", fail);
    };
    if (signal?.aborted) return fail(new DOMException("request aborted", "AbortError"));
    signal?.addEventListener("abort", onAbort, { once: true });
    socket.once("error", fail);
    socket.once("connect", () => {
      cleanup();
      resolve(socket);
    });
  });
}

export function createAppDialer(wake: WakeController, options: AppDialerOptions = {}): AppDialer {
  const retryDirectMs = options.retryDirectMs ?? 30_000;
  const maxEntries = options.maxEntries ?? 10_000;
  const connectTimeoutMs = options.connectTimeoutMs ?? 3_000;
  const now = options.now ?? Date.now;
  const refusals = new Map<string, Refusal>();
  const keyOf = (sandboxId: string, port: number) => `${sandboxId}:${port}`;

  const throughAgent = (key: string, host: string): boolean => {
    const refusal = refusals.get(key);
    if (refusal === undefined) return false;
    if (refusal.host === host && refusal.until > now()) return true;
    refusals.delete(key);
    return false;
  };
  const remember = (key: string, host: string) => {
    refusals.delete(key);
    if (refusals.size >= maxEntries) {
      const oldest = refusals.keys().next().value;
      if (oldest !== undefined) refusals.delete(oldest);
    }
    refusals.set(key, { host, until: now() + retryDirectMs });
  };

  const dialWith = async (agent: AgentClient, key: string, port: number, signal?: AbortSignal) => {
    const host = agent.host;
    let refusedAt: string | undefined;
    if (host !== undefined && !throughAgent(key, host)) {
      try {
        return await connectDirect(host, port, connectTimeoutMs, signal);
      } catch (e) {
        if (signal?.aborted === true) throw e;
        // Refused: nothing listens on the sandbox's address (an app on 127.0.0.1 only, or none).
        if ((e as NodeJS.ErrnoException).code === "ECONNREFUSED") refusedAt = host;
        // Anything else (a timeout: the sandbox may have been paused behind the wake cache) also
        // goes through the agent, whose unreachable endpoint makes withAgent wake it again.
      }
    }
    const socket = await agent.forward(port, signal !== undefined ? { signal } : {});
    // Remembered only when the agent reached the app: then it listens on 127.0.0.1 only. When
    // nothing listens at all (a dev server still starting), the next request tries directly again.
    if (refusedAt !== undefined) remember(key, refusedAt);
    return socket;
  };

  return {
    dial: (sandboxId, port, signal) =>
      wake.withAgent(
        sandboxId,
        (agent) => dialWith(agent, keyOf(sandboxId, port), port, signal),
        signal !== undefined ? { signal } : {},
      ),
    forget: (sandboxId, port) => void refusals.delete(keyOf(sandboxId, port)),
  };
}
