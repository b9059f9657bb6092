import type { Socket } from "node:net";
import {
  AgentLimits,
  EXEC_OUTPUT_CAP_BYTES,
  EXEC_OUTPUT_TRUNCATION_NOTE,
  ErrorText,
  FrameType,
  decodeExitPayload,
  type ActivityInfo,
  type ExecRequest,
  type FileInfo,
  type FileReadResponse,
  type SessionInfo,
} from "@bhatti/agent-protocol";
import { type AgentConnection, type AgentEndpoint, dialAgent } from "./agent-connection.js";
import { AgentConnectionError, AgentError, abortError } from "./agent-error.js";
import { ConnectionSource, type ConnectionPoolOptions } from "./connection-pool.js";
import { ExecProcess } from "./exec-process.js";
import {
  isActivityInfo,
  isDetachedExecResult,
  isFileInfo,
  isFileReadResponse,
  isForwardResponse,
  isSessionInfo,
  isStatusOk,
  listOf,
} from "./reply-shapes.js";
import { SessionConnection } from "./session-connection.js";
import { WAIT_READY_GAP_MS, WAIT_READY_TIMEOUT_MS, waitReadyAttemptTimeoutMs } from "./wait-ready.js";

export interface AgentClientOptions {
  /** Control port (1024 in a sandbox). */
  control: AgentEndpoint;
  /** Forward port (1025 in a sandbox). */
  forward: AgentEndpoint;
  /** The sandbox's agent token; "" when the agent has none. */
  token: string;
  /** Pre-dialed, authenticated spare connections; default `{ size: 2, idleMs: 5000 }`, `false` disables. */
  pool?: Partial<ConnectionPoolOptions> | false;
  /** Default 5000 ms. */
  connectTimeoutMs?: number;
  /**
   * How long the agent gets to answer a request (a listing, a stat, a file header, a write's
   * acknowledgement, a session's SESSION_INFO...) before the operation fails with
   * AgentTimeoutError; default DEFAULT_OPERATION_TIMEOUT_MS. Commands (exec) are not bounded
   * here: their callers give them their own deadline.
   */
  operationTimeoutMs?: number;
}

/** Sandbox root can stop or trace the agent: no reply is awaited for longer than this by default. */
export const DEFAULT_OPERATION_TIMEOUT_MS = 30_000;

export interface CallOptions {
  signal?: AbortSignal;
  /** Overrides the client's operationTimeoutMs for this call. */
  timeoutMs?: number;
}

export interface ExecOptions extends CallOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Run as root (the sandbox must allow it). */
  root?: boolean;
  /** Ask the agent to flush file systems before EXIT. */
  sync?: boolean;
  /**
   * The command's stdin is /dev/null (as `docker exec` without -i) instead of a stream from
   * this side; input sent anyway is dropped. One-shot execs only.
   */
  stdinNull?: boolean;
}

export interface BufferedExecOptions extends ExecOptions {
  /** Sent as stdin, then EOF. Without it stdin is closed at once. */
  stdin?: Uint8Array | string;
  /** Combined stdout+stderr cap; default 10 MiB (v1). */
  maxOutputBytes?: number;
}

export interface ExecResult {
  exitCode: number;
  stdout: Buffer;
  stderr: Buffer;
  /** Output beyond maxOutputBytes was dropped (and stderr says so). */
  truncated: boolean;
}

export interface SessionOptions extends ExecOptions {
  rows?: number;
  cols?: number;
  /** Kill the session after this long without a client; 0 = never. */
  maxIdleSec?: number;
}

export interface ReadFileOptions extends CallOptions {
  /** 1-based first line (truncated mode). */
  offset?: number;
  /** Maximum number of lines (truncated mode). */
  limit?: number;
  /** Byte budget; may cut a line (truncated mode). */
  maxBytes?: number;
}

export interface FileReadStream extends FileReadResponse {
  /** The content (or the selected part); consume it fully or abort. */
  content: AsyncIterable<Buffer>;
}

export interface WriteFileOptions extends CallOptions {
  /** Octal mode string, default "0644". */
  mode?: string;
}

export interface WaitReadyOptions extends CallOptions {
  timeoutMs?: number;
  /** The command whose success proves the agent can run commands; default `true` (from PATH). */
  probeArgv?: string[];
}

/** Typed access to one sandbox's agent. */
export interface AgentClient {
  /** Runs a command to completion, buffering its output. */
  exec(argv: string[], options?: BufferedExecOptions): Promise<ExecResult>;
  /** Starts a command and streams its output; see ExecProcess. */
  execStream(argv: string[], options?: ExecOptions): Promise<ExecProcess>;
  /** Starts a command that outlives the connection; output goes to `outputFile`. */
  execDetached(
    argv: string[],
    options?: ExecOptions & { outputFile?: string },
  ): Promise<{ pid: number; outputFile: string }>;
  /** Starts a TTY session and attaches to it. */
  openTtySession(argv: string[], options?: SessionOptions): Promise<SessionConnection>;
  /** Starts a piped (non-TTY) session with scrollback and attaches to it. */
  openPipedSession(argv: string[], options?: SessionOptions): Promise<SessionConnection>;
  /** Reattaches; with ifDetached, fails with "session is attached" if someone else is. */
  attachSession(
    sessionId: string,
    options?: CallOptions & { ifDetached?: boolean },
  ): Promise<SessionConnection>;
  listSessions(options?: CallOptions): Promise<SessionInfo[]>;
  /** SIGKILLs the session's process group. */
  killSession(sessionId: string, options?: CallOptions): Promise<void>;
  activity(options?: CallOptions): Promise<ActivityInfo>;
  readFile(path: string, options?: ReadFileOptions): Promise<FileReadStream>;
  readFileBuffer(path: string, options?: ReadFileOptions): Promise<FileReadResponse & { data: Buffer }>;
  /** Atomic write. A stream source needs its exact `size`. */
  writeFile(path: string, data: Uint8Array | string, options?: WriteFileOptions): Promise<void>;
  writeFileStream(
    path: string,
    source: AsyncIterable<Uint8Array>,
    size: number,
    options?: WriteFileOptions,
  ): Promise<void>;
  stat(path: string, options?: CallOptions): Promise<FileInfo>;
  listDir(path: string, options?: CallOptions): Promise<FileInfo[]>;
  /** A raw byte stream to 127.0.0.1:port inside the sandbox. */
  forward(port: number, options?: CallOptions): Promise<Socket>;
  /** The address the agent's forward port is dialed at (the sandbox's own); undefined for a Unix socket. */
  readonly host: string | undefined;
  /** Polls `exec true` with v1's backoff until it succeeds (default limit 30 s). */
  waitReady(options?: WaitReadyOptions): Promise<void>;
  /** Closes pooled spare connections (call after a sandbox pause/restore). */
  drainPool(): void;
  close(): void;
}

/**
 * `content`, whose return() also runs `close` when the generator never started (a generator's
 * finally only runs once it has): a reader that stops before reading anything must not leave
 * the connection to the agent, which keeps a completed read's connection open (REUSE_REQ).
 */
function closingOnReturn(content: AsyncGenerator<Buffer>, close: () => void): AsyncIterable<Buffer> {
  return {
    [Symbol.asyncIterator]: () => ({
      next: () => content.next(),
      return: async (value?: unknown) => {
        close();
        return content.return(value);
      },
      throw: (err?: unknown) => content.throw(err),
    }),
  };
}

export function createAgentClient(options: AgentClientOptions): AgentClient {
  const connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
  const poolOptions: ConnectionPoolOptions =
    options.pool === false
      ? { size: 0, idleMs: 0 }
      : { size: options.pool?.size ?? 2, idleMs: options.pool?.idleMs ?? 5_000 };
  const source = new ConnectionSource(options.control, options.token, connectTimeoutMs, poolOptions);
  const operationTimeoutMs = options.operationTimeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS;
  const deadlineOf = (o: CallOptions | undefined) => o?.timeoutMs ?? operationTimeoutMs;

  /**
   * Runs a request/response operation. A spare connection may have died while idle (the
   * sandbox restarted or restored); if it fails before the agent answered anything, the
   * operation is retried once on a fresh connection.
   */
  async function call<T>(
    signal: AbortSignal | undefined,
    /** Deadline of the whole operation on one connection (0 = none), and what it waits for. */
    deadline: { ms: number; what: string },
    op: (conn: AgentConnection) => Promise<T>,
    /** The agent keeps the connection after this operation (REUSE_REQ): it goes back to the pool. */
    reusable = false,
  ): Promise<T> {
    const { conn, pooled } = await source.acquire(signal);
    conn.bindSignal(signal);
    const disarm = conn.deadline(deadline.ms, deadline.what);
    try {
      const result = await op(conn);
      conn.release(reusable);
      return result;
    } catch (err) {
      if (!pooled || !(err instanceof AgentConnectionError) || conn.receivedAny || signal?.aborted) throw err;
      conn.close();
      const retry = await source.acquire(signal, true);
      retry.conn.bindSignal(signal);
      const disarmRetry = retry.conn.deadline(deadline.ms, deadline.what);
      try {
        const result = await op(retry.conn);
        retry.conn.release(reusable);
        return result;
      } finally {
        disarmRetry();
        retry.conn.close();
      }
    } finally {
      disarm();
      conn.close();
    }
  }

  /** Waits for the agent's first reply on a connection the caller then owns, within the deadline. */
  async function firstReply<T>(
    conn: AgentConnection,
    o: CallOptions | undefined,
    what: string,
    read: () => Promise<T>,
  ) {
    const disarm = conn.deadline(deadlineOf(o), what);
    try {
      return await read();
    } finally {
      disarm();
    }
  }

  /** Opens a connection for a streaming operation that the caller then owns. */
  async function open(signal: AbortSignal | undefined): Promise<AgentConnection> {
    const { conn } = await source.acquire(signal);
    conn.bindSignal(signal);
    return conn;
  }

  function execRequest(
    argv: string[],
    o: ExecOptions | undefined,
    extra: Partial<ExecRequest> = {},
  ): ExecRequest {
    const req: ExecRequest = { argv, ...extra };
    if (o?.env !== undefined) req.env = o.env;
    if (o?.cwd !== undefined) req.cwd = o.cwd;
    if (o?.root === true) req.root = true;
    if (o?.sync === true) req.sync = true;
    if (o?.stdinNull === true) req.stdin_null = true;
    return req;
  }

  async function startSession(
    argv: string[],
    o: SessionOptions | undefined,
    tty: boolean,
  ): Promise<SessionConnection> {
    const conn = await open(o?.signal);
    try {
      const extra: Partial<ExecRequest> = tty ? { tty: true } : { session: true };
      if (o?.rows !== undefined) extra.rows = o.rows;
      if (o?.cols !== undefined) extra.cols = o.cols;
      if (o?.maxIdleSec !== undefined) extra.max_idle_sec = o.maxIdleSec;
      conn.sendJson(FrameType.EXEC_REQ, execRequest(argv, o, extra));
      const info = await firstReply(conn, o, "SESSION_INFO", () =>
        conn.expectJson(FrameType.SESSION_INFO, isSessionInfo),
      );
      return new SessionConnection(conn, info);
    } catch (err) {
      conn.close();
      throw err;
    }
  }

  async function readFile(path: string, o: ReadFileOptions = {}): Promise<FileReadStream> {
    const conn = await open(o.signal);
    try {
      const req: Record<string, unknown> = { path };
      if (o.offset !== undefined && o.offset > 0) req["offset"] = o.offset;
      if (o.limit !== undefined && o.limit > 0) req["limit"] = o.limit;
      if (o.maxBytes !== undefined && o.maxBytes > 0) req["max_bytes"] = o.maxBytes;
      conn.sendJson(FrameType.FILE_READ_REQ, req);
      const resp = await firstReply(conn, o, "FILE_READ_RESP", () =>
        conn.expectJson(FrameType.FILE_READ_RESP, isFileReadResponse),
      );
      const chunkDeadline = deadlineOf(o);
      /** Set once the read completed and the connection went back (it may then serve others). */
      let handedBack = false;
      async function* content(): AsyncGenerator<Buffer> {
        try {
          for (;;) {
            // Each chunk gets the deadline, counted while this side waits (not while the consumer is slow).
            const disarm = conn.deadline(chunkDeadline, "the next file chunk");
            const frame = await conn.expect().finally(disarm);
            if (frame.type === FrameType.STDOUT) yield frame.payload;
            else if (frame.type === FrameType.EXIT) {
              handedBack = true;
              conn.release(true);
              return;
            } else throw conn.unexpected(frame.type);
          }
        } finally {
          if (!handedBack) conn.close();
        }
      }
      const closeUnlessHandedBack = () => {
        if (!handedBack) conn.close();
      };
      return { size: resp.size, mode: resp.mode, content: closingOnReturn(content(), closeUnlessHandedBack) };
    } catch (err) {
      conn.close();
      throw err;
    }
  }

  async function writeFileFrom(
    path: string,
    source: AsyncIterable<Uint8Array> | Uint8Array,
    size: number,
    o: WriteFileOptions = {},
  ): Promise<void> {
    const ms = deadlineOf(o);
    const run = async (conn: AgentConnection) => {
      conn.sendJson(FrameType.FILE_WRITE_REQ, { path, mode: o.mode ?? "0644", size });
      const reply = conn.expectJson(FrameType.FILE_WRITE_RESP, isStatusOk);
      // An early ERROR (bad size, a directory) must not leave the writes below unhandled.
      reply.catch(() => {});
      const chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array> =
        source instanceof Uint8Array ? [source] : source;
      for await (const chunk of chunks) {
        for (let off = 0; off < chunk.byteLength; off += 512 * 1024) {
          if (!conn.alive) break;
          if (!conn.send(FrameType.STDIN, chunk.subarray(off, off + 512 * 1024))) {
            // The agent stopped taking bytes: it gets the deadline to take more.
            const disarm = conn.deadline(ms, "by reading the upload");
            await conn.drained().finally(disarm);
          }
        }
      }
      const disarm = conn.deadline(ms, "FILE_WRITE_RESP");
      await reply.finally(disarm);
    };
    // A stream cannot be replayed, so only whole buffers get the stale-spare retry (the
    // deadlines are armed around each wait inside `run`).
    if (source instanceof Uint8Array) return call(o.signal, { ms: 0, what: "" }, run, true);
    const conn = await open(o.signal);
    try {
      await run(conn);
      conn.release(true);
    } finally {
      conn.close();
    }
  }

  const client: AgentClient = {
    host: "host" in options.forward ? options.forward.host : undefined,
    async exec(argv, o = {}) {
      // A command runs as long as it runs: its caller bounds it (signal or its own deadline).
      return call(
        o.signal,
        { ms: 0, what: "" },
        async (conn) => {
          conn.sendJson(FrameType.EXEC_REQ, execRequest(argv, o));
          if (o.stdin !== undefined) {
            const bytes = typeof o.stdin === "string" ? Buffer.from(o.stdin) : o.stdin;
            for (let off = 0; off < bytes.byteLength; off += 512 * 1024) {
              conn.send(FrameType.STDIN, bytes.subarray(off, off + 512 * 1024));
            }
          }
          conn.endExecInput();
          const cap = o.maxOutputBytes ?? EXEC_OUTPUT_CAP_BYTES;
          const stdout: Buffer[] = [];
          const stderr: Buffer[] = [];
          let total = 0;
          let truncated = false;
          for (;;) {
            const frame = await conn.expect();
            if (frame.type === FrameType.STDOUT || frame.type === FrameType.STDERR) {
              const room = cap - total;
              if (room <= 0) {
                truncated = true;
                continue;
              }
              const data = frame.payload.byteLength > room ? frame.payload.subarray(0, room) : frame.payload;
              if (data.byteLength < frame.payload.byteLength) truncated = true;
              (frame.type === FrameType.STDOUT ? stdout : stderr).push(data);
              total += data.byteLength;
            } else if (frame.type === FrameType.EXIT) {
              if (truncated) stderr.push(Buffer.from(EXEC_OUTPUT_TRUNCATION_NOTE));
              return {
                exitCode: decodeExitPayload(frame.payload) ?? 1,
                stdout: Buffer.concat(stdout),
                stderr: Buffer.concat(stderr),
                truncated,
              };
            } else {
              throw conn.unexpected(frame.type);
            }
          }
        },
        true,
      );
    },

    async execStream(argv, o = {}) {
      const conn = await open(o.signal);
      conn.sendJson(FrameType.EXEC_REQ, execRequest(argv, o));
      return new ExecProcess(conn);
    },

    async execDetached(argv, o = {}) {
      return call(o.signal, { ms: deadlineOf(o), what: "a detached exec" }, async (conn) => {
        const extra: Partial<ExecRequest> = { detach: true };
        if (o.outputFile !== undefined) extra.output_file = o.outputFile;
        conn.sendJson(FrameType.EXEC_REQ, execRequest(argv, o, extra));
        const result = await conn.expectJson(FrameType.STDOUT, isDetachedExecResult);
        const exit = await conn.expect();
        if (exit.type !== FrameType.EXIT) throw conn.unexpected(exit.type);
        return { pid: result.pid, outputFile: result.output_file };
      });
    },

    openTtySession: (argv, o) => startSession(argv, o, true),
    openPipedSession: (argv, o) => startSession(argv, o, false),

    async attachSession(sessionId, o = {}) {
      const conn = await open(o.signal);
      try {
        const req: ExecRequest = { argv: [], session_id: sessionId };
        if (o.ifDetached === true) req.if_detached = true;
        conn.sendJson(FrameType.EXEC_REQ, req);
        const info = await firstReply(conn, o, "SESSION_INFO", () =>
          conn.expectJson(FrameType.SESSION_INFO, isSessionInfo),
        );
        return new SessionConnection(conn, info);
      } catch (err) {
        conn.close();
        throw err;
      }
    },

    listSessions(o = {}) {
      return call(o.signal, { ms: deadlineOf(o), what: "EXEC_LIST_RESP" }, async (conn) => {
        conn.send(FrameType.EXEC_LIST_REQ);
        return (await conn.expectJson(FrameType.EXEC_LIST_RESP, listOf(isSessionInfo))) ?? [];
      });
    },

    killSession(sessionId, o = {}) {
      return call(o.signal, { ms: deadlineOf(o), what: "EXEC_KILL" }, async (conn) => {
        conn.sendJson(FrameType.EXEC_KILL, { session_id: sessionId });
        const frame = await conn.expect();
        if (frame.type !== FrameType.EXIT) throw conn.unexpected(frame.type);
      });
    },

    activity(o = {}) {
      return call(
        o.signal,
        { ms: deadlineOf(o), what: "ACTIVITY_RESP" },
        async (conn) => {
          conn.send(FrameType.ACTIVITY_REQ);
          return conn.expectJson(FrameType.ACTIVITY_RESP, isActivityInfo);
        },
        true,
      );
    },

    readFile,

    async readFileBuffer(path, o = {}) {
      const stream = await readFile(path, o);
      const parts: Buffer[] = [];
      for await (const chunk of stream.content) parts.push(chunk);
      return { size: stream.size, mode: stream.mode, data: Buffer.concat(parts) };
    },

    writeFile(path, data, o = {}) {
      const bytes = typeof data === "string" ? Buffer.from(data) : data;
      return writeFileFrom(path, bytes, bytes.byteLength, o);
    },

    writeFileStream(path, source, size, o = {}) {
      return writeFileFrom(path, source, size, o);
    },

    stat(path, o = {}) {
      return call(
        o.signal,
        { ms: deadlineOf(o), what: "FILE_STAT_RESP" },
        async (conn) => {
          conn.sendJson(FrameType.FILE_STAT_REQ, { path });
          return conn.expectJson(FrameType.FILE_STAT_RESP, isFileInfo);
        },
        true,
      );
    },

    listDir(path, o = {}) {
      return call(
        o.signal,
        { ms: deadlineOf(o), what: "FILE_LS_RESP" },
        async (conn) => {
          conn.sendJson(FrameType.FILE_LS_REQ, { path });
          // The agent lists at most maxListEntries, plus a truncation sentinel.
          const entries = listOf(isFileInfo, AgentLimits.maxListEntries + 1);
          return (await conn.expectJson(FrameType.FILE_LS_RESP, entries)) ?? [];
        },
        true,
      );
    },

    async forward(port, o = {}) {
      const conn = await dialAgent(options.forward, connectTimeoutMs, o.signal);
      conn.bindSignal(o.signal);
      try {
        if (options.token !== "") conn.send(FrameType.AUTH, options.token);
        conn.sendJson(FrameType.FWD_REQ, { port });
        const resp = await firstReply(conn, o, "FWD_RESP", () =>
          conn.expectJson(FrameType.FWD_RESP, isForwardResponse),
        );
        if (resp.status !== "ok") throw new AgentError(resp.message);
      } catch (err) {
        conn.close();
        throw err;
      }
      conn.bindSignal(undefined);
      const early = conn.detachReader();
      if (early.byteLength > 0) conn.socket.unshift(early);
      return conn.socket;
    },

    async waitReady(o = {}) {
      const deadline = Date.now() + (o.timeoutMs ?? WAIT_READY_TIMEOUT_MS);
      let lastError: unknown;
      for (let attempt = 1; ; attempt++) {
        if (o.signal?.aborted) throw abortError(o.signal);
        const remaining = deadline - Date.now();
        if (remaining <= 0) break;
        const attemptSignal = AbortSignal.timeout(Math.min(waitReadyAttemptTimeoutMs(attempt), remaining));
        const signal = o.signal === undefined ? attemptSignal : AbortSignal.any([o.signal, attemptSignal]);
        try {
          const probe = o.probeArgv ?? ["true"];
          const result = await client.exec(probe, { signal });
          if (result.exitCode === 0) return;
          lastError = new Error(`${probe[0]} exited ${result.exitCode}`);
        } catch (err) {
          if (o.signal?.aborted) throw abortError(o.signal);
          // A wrong token never becomes right: fail fast.
          if (err instanceof AgentError && err.agentMessage === ErrorText.authRequired) throw err;
          lastError = err;
        }
        source.drain();
        await new Promise((r) => setTimeout(r, WAIT_READY_GAP_MS));
      }
      throw new AgentConnectionError(
        `agent not ready after ${o.timeoutMs ?? WAIT_READY_TIMEOUT_MS} ms: ${(lastError as Error | undefined)?.message ?? "no attempt"}`,
        { cause: lastError, code: "ETIMEDOUT" },
      );
    },

    drainPool: () => source.drain(),
    close: () => source.close(),
  };
  return client;
}
