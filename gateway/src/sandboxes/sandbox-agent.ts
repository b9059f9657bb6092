import type { AgentClient, FileReadStream } from "@bhatti/agent-client";
import { AgentLimits, type FileInfo, type SessionInfo } from "@bhatti/agent-protocol";
import { Code, ConnectError } from "@connectrpc/connect";
import type { AuthenticatedUser } from "../auth/authenticated-user.js";
import type { WakeController } from "../wake/wake-controller.js";
import { translatingAgentErrors } from "./agent-errors.js";
import { parseFileMode } from "./create-input.js";
import { effectiveExecTimeoutSec } from "./exec-timeout.js";
import { type ExecOutputEvent, startExec } from "./sandbox-exec.js";
import type { SandboxManager } from "./sandbox-manager.js";
import { type SessionOperations, createSessionOperations } from "./session-operations.js";

/** Stdin sent with a buffered or streamed exec (the Connect API carries it in the request). */
export const MAX_EXEC_STDIN = 16 * 1024 * 1024;

export interface CommandInput {
  cmd: string[];
  env?: Record<string, string>;
  /** Empty is the agent's default directory. */
  cwd?: string;
  /** Checked against MAX_EXEC_STDIN for every kind of exec; a detached command gets none. */
  stdin?: Uint8Array;
}

export interface ExecCall extends CommandInput {
  /** As the caller sent it: absent or 0 is the default; out of range is InvalidArgument. */
  timeoutSec?: unknown;
}

export interface DetachedExecCall extends CommandInput {
  /** Checked like any exec's when given (REST sends it); a detached command has no deadline. */
  timeoutSec?: unknown;
  /** Empty: the agent picks the file. */
  outputFile?: string;
}

export interface ReadFileCall {
  path: string;
  offset?: number;
  limit?: number;
  maxBytes?: number;
}

/** The content as bytes in hand, or as a stream of exactly `size` bytes (a REST body). */
export type WriteFileContent = { bytes: Uint8Array } | { stream: AsyncIterable<Uint8Array>; size: number };

export interface WriteFileCall {
  path: string;
  /** Octal mode as the caller sent it; empty is the default. */
  mode: string;
  content: WriteFileContent;
}

/**
 * The operations on what runs inside a user's sandbox (exec, files, sessions), for every surface
 * (REST, Connect). Each one checks its limits, resolves the caller's sandbox reference (another
 * user's is NotFound), wakes the sandbox and turns agent failures into ConnectErrors with a
 * status: the surfaces only parse requests and serialize answers. `signal` is the caller's
 * request: aborting it stops waiting and drops the agent call. Interactive sessions (the
 * WebSocket shell and piped exec) open through `interactive` (session-operations.ts).
 */
export interface SandboxAgent extends SessionOperations {
  exec(
    user: AuthenticatedUser,
    ref: string,
    input: ExecCall,
    signal: AbortSignal,
  ): Promise<AsyncGenerator<ExecOutputEvent>>;
  execDetached(
    user: AuthenticatedUser,
    ref: string,
    input: DetachedExecCall,
    signal: AbortSignal,
  ): Promise<{ pid: number; outputFile: string }>;
  /** Size and mode come back before any content, so errors come back before a body. */
  readFile(
    user: AuthenticatedUser,
    ref: string,
    input: ReadFileCall,
    signal: AbortSignal,
  ): Promise<FileReadStream & { sandboxId: string }>;
  writeFile(user: AuthenticatedUser, ref: string, input: WriteFileCall, signal: AbortSignal): Promise<void>;
  listDir(user: AuthenticatedUser, ref: string, path: string, signal: AbortSignal): Promise<FileInfo[]>;
  stat(user: AuthenticatedUser, ref: string, path: string, signal: AbortSignal): Promise<FileInfo>;
  listSessions(user: AuthenticatedUser, ref: string, signal: AbortSignal): Promise<SessionInfo[]>;
}

function requirePath(path: string): void {
  if (path === "") throw new ConnectError("path required", Code.InvalidArgument);
}

function checkCommand(input: CommandInput): void {
  if (input.cmd.length === 0) throw new ConnectError("cmd required", Code.InvalidArgument);
  if (input.stdin !== undefined && input.stdin.byteLength > MAX_EXEC_STDIN) {
    throw new ConnectError(`stdin larger than ${MAX_EXEC_STDIN} bytes`, Code.InvalidArgument);
  }
}

function checkWriteSize(size: number): void {
  if (size > AgentLimits.maxWriteBytes) {
    throw new ConnectError(
      `file too large: ${size} bytes (max ${AgentLimits.maxWriteBytes})`,
      Code.InvalidArgument,
    );
  }
}

/** The fields the agent takes, without empty ones (an absent cwd is the agent's default). */
function commandOptions(input: CommandInput): { env?: Record<string, string>; cwd?: string } {
  return {
    ...(input.env !== undefined ? { env: input.env } : {}),
    ...(input.cwd !== undefined && input.cwd !== "" ? { cwd: input.cwd } : {}),
  };
}

export function createSandboxAgent(deps: { sandboxes: SandboxManager; wake: WakeController }): SandboxAgent {
  const { sandboxes, wake } = deps;

  /** One agent call on the user's sandbox `ref`: resolved, woken, its failures translated. */
  const onAgent = async <T>(
    user: AuthenticatedUser,
    ref: string,
    signal: AbortSignal,
    op: (agent: AgentClient, sandboxId: string) => Promise<T>,
  ): Promise<T> => {
    const id = await sandboxes.resolveId(user, ref);
    return translatingAgentErrors(() => wake.withAgent(id, (agent) => op(agent, id), { signal }));
  };

  return {
    ...createSessionOperations(deps),

    async exec(user, ref, input, signal) {
      checkCommand(input);
      const timeoutSec = effectiveExecTimeoutSec(input.timeoutSec);
      const id = await sandboxes.resolveId(user, ref);
      return startExec(wake, id, {
        cmd: input.cmd,
        timeoutSec,
        ...commandOptions(input),
        ...(input.stdin !== undefined ? { stdin: input.stdin } : {}),
        signal,
      });
    },

    execDetached(user, ref, input, signal) {
      checkCommand(input);
      if ("timeoutSec" in input) effectiveExecTimeoutSec(input.timeoutSec);
      return onAgent(user, ref, signal, (agent) =>
        agent.execDetached(input.cmd, {
          ...commandOptions(input),
          ...(input.outputFile !== undefined && input.outputFile !== ""
            ? { outputFile: input.outputFile }
            : {}),
          signal,
        }),
      );
    },

    readFile(user, ref, input, signal) {
      requirePath(input.path);
      return onAgent(user, ref, signal, async (agent, sandboxId) => {
        // The content streams after this call returns (to a client that may read slowly): the
        // sandbox stays held until it has been read to the end, abandoned, or the caller left.
        const release = wake.hold(sandboxId);
        try {
          const file = await agent.readFile(input.path, {
            offset: input.offset ?? 0,
            limit: input.limit ?? 0,
            maxBytes: input.maxBytes ?? 0,
            signal,
          });
          return { ...file, content: releasingWhenDone(file.content, release, signal), sandboxId };
        } catch (e) {
          release();
          throw e;
        }
      });
    },

    async writeFile(user, ref, input, signal) {
      requirePath(input.path);
      const content = input.content;
      checkWriteSize("bytes" in content ? content.bytes.byteLength : content.size);
      const mode = parseFileMode(input.mode).toString(8).padStart(4, "0");
      if ("bytes" in content) {
        await onAgent(user, ref, signal, (agent) =>
          agent.writeFile(input.path, content.bytes, { mode, signal }),
        );
        return;
      }
      // A stream is read once, so the call is never retried on a fresh connection (withAgent would).
      // Held like withAgent's calls: a slow upload must not be frozen under its client.
      const id = await sandboxes.resolveId(user, ref);
      const release = wake.hold(id);
      try {
        const agent = await wake.ensureHot(id);
        await translatingAgentErrors(() =>
          agent.writeFileStream(input.path, content.stream, content.size, { mode, signal }),
        );
      } finally {
        release();
      }
    },

    listDir(user, ref, path, signal) {
      requirePath(path);
      return onAgent(user, ref, signal, (agent) => agent.listDir(path, { signal }));
    },

    stat(user, ref, path, signal) {
      requirePath(path);
      return onAgent(user, ref, signal, (agent) => agent.stat(path, { signal }));
    },

    listSessions(user, ref, signal) {
      return onAgent(user, ref, signal, (agent) => agent.listSessions({ signal }));
    },
  };
}

/**
 * `content`, calling `release` once when it is read to the end, fails, is returned early, or
 * `signal` aborts (a caller that leaves before reading it never iterates it).
 */
function releasingWhenDone(
  content: AsyncIterable<Buffer>,
  release: () => void,
  signal: AbortSignal | undefined,
): AsyncIterable<Buffer> {
  signal?.addEventListener("abort", release, { once: true });
  const done = () => {
    signal?.removeEventListener("abort", release);
    release();
  };
  return {
    async *[Symbol.asyncIterator]() {
      try {
        yield* content;
      } finally {
        done();
      }
    },
  };
}
