import type { AgentClient, SessionConnection } from "@bhatti/agent-client";
import { Code, ConnectError } from "@connectrpc/connect";
import type { AuthenticatedUser } from "../auth/authenticated-user.js";
import type { WakeController } from "../wake/wake-controller.js";
import { translatingAgentErrors } from "./agent-errors.js";
import type { SandboxManager } from "./sandbox-manager.js";

export interface ShellSessionCall {
  /** Attach to this session (kicking any client already attached); empty or absent: pick one. */
  sessionId?: string;
  /** Never reattach to a detached shell: always open a new one. */
  forceNew: boolean;
}

export interface PipedSessionCall {
  cmd: string[];
  env?: Record<string, string>;
  maxIdleSec: number;
}

/**
 * A user's sandbox, resolved, on which interactive sessions (WebSocket shell and piped exec)
 * open. Each call wakes the sandbox and turns agent failures into ConnectErrors with a status.
 */
export interface InteractiveSandbox {
  readonly sandboxId: string;
  /** The TTY shell: the given session, else the newest detached one (unless forceNew), else a new one. */
  openShell(input: ShellSessionCall): Promise<{ session: SessionConnection; reattach: boolean }>;
  openPiped(input: PipedSessionCall): Promise<SessionConnection>;
  attach(sessionId: string): Promise<SessionConnection>;
}

export interface SessionOperations {
  /**
   * Resolves the caller's sandbox reference (another user's is NotFound) once, before a
   * WebSocket upgrade, so that failure is still an HTTP status.
   */
  interactive(user: AuthenticatedUser, ref: string): Promise<InteractiveSandbox>;
}

const SHELL_ENV = { TERM: "xterm-256color" };

/** The newest running TTY session nobody is attached to, if any. */
async function newestDetachedTty(agent: AgentClient): Promise<string | undefined> {
  const sessions = await agent.listSessions();
  const candidates = sessions.filter((s) => s.tty && s.running && !s.attached);
  candidates.sort((a, b) => b.created_at - a.created_at);
  return candidates[0]?.session_id;
}

async function openNewShell(agent: AgentClient): Promise<SessionConnection> {
  const options = { env: SHELL_ENV, rows: 24, cols: 80, maxIdleSec: 3600, cwd: "/workspace" };
  try {
    return await agent.openTtySession(["/bin/bash", "-li"], options);
  } catch {
    // Images without bash (busybox) still get a shell.
    return agent.openTtySession(["/bin/sh", "-l"], { ...options, cwd: "/" });
  }
}

function checkPiped(input: PipedSessionCall): void {
  if (input.cmd.length === 0) throw new ConnectError("cmd required", Code.InvalidArgument);
  if (!Number.isFinite(input.maxIdleSec) || input.maxIdleSec < 0) {
    throw new ConnectError("max_idle_sec must be a non-negative number", Code.InvalidArgument);
  }
}

export function createSessionOperations(deps: {
  sandboxes: SandboxManager;
  wake: WakeController;
}): SessionOperations {
  const { sandboxes, wake } = deps;
  return {
    async interactive(user, ref) {
      const sandboxId = await sandboxes.resolveId(user, ref);
      // A session outlives one agent call, so it is never retried on a fresh connection.
      const onAgent = <T>(op: (agent: AgentClient) => Promise<T>): Promise<T> =>
        translatingAgentErrors(async () => op(await wake.ensureHot(sandboxId)));
      return {
        sandboxId,
        openShell(input) {
          return onAgent(async (agent) => {
            if (input.sessionId !== undefined && input.sessionId !== "") {
              return { session: await agent.attachSession(input.sessionId), reattach: true };
            }
            if (!input.forceNew) {
              const candidate = await newestDetachedTty(agent).catch(() => undefined);
              if (candidate !== undefined) {
                const session = await agent
                  .attachSession(candidate, { ifDetached: true })
                  .catch(() => undefined);
                if (session !== undefined) return { session, reattach: true };
              }
            }
            return { session: await openNewShell(agent), reattach: false };
          });
        },
        async openPiped(input) {
          checkPiped(input);
          return onAgent((agent) =>
            agent.openPipedSession(input.cmd, {
              ...(input.env !== undefined ? { env: input.env } : {}),
              maxIdleSec: input.maxIdleSec,
            }),
          );
        },
        attach(sessionId) {
          if (sessionId === "")
            return Promise.reject(new ConnectError("session required", Code.InvalidArgument));
          return onAgent((agent) => agent.attachSession(sessionId));
        },
      };
    },
  };
}
