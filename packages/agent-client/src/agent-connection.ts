import { connect, type Socket } from "node:net";
import {
  FrameError,
  FrameReader,
  FrameType,
  encodeFrame,
  encodeJsonFrame,
  frameTypeName,
  unexpectedFrameText,
  type Frame,
} from "@bhatti/agent-protocol";
import {
  AgentConnectionError,
  AgentError,
  AgentProtocolError,
  AgentTimeoutError,
  abortError,
} from "./agent-error.js";
import type { ReplyCheck } from "./reply-shapes.js";

/** Where an agent port listens: TCP (sandboxes) or a Unix socket. */
export type AgentEndpoint = { host: string; port: number } | { path: string };

export function describeEndpoint(endpoint: AgentEndpoint): string {
  return "path" in endpoint ? endpoint.path : `${endpoint.host}:${endpoint.port}`;
}

const knownTypes = new Set<number>(Object.values(FrameType));

/**
 * Undecoded bytes buffered per connection before the socket is paused. It must exceed one
 * whole frame (1 MiB), or a paused socket could never complete the frame the reader waits
 * for; kept small because each stalled consumer (a client that stops reading) costs this much.
 */
const READ_HIGH_WATER_MARK = 2 * 1024 * 1024;

/**
 * One host-side connection to an agent port: frame writes (one buffer, one write each) and
 * frame reads that skip types this version does not know (forward compatibility).
 */
export class AgentConnection {
  private readonly reader: FrameReader;
  private abortCleanup: (() => void) | undefined;
  /** True once any frame of the current operation arrived from the agent. */
  receivedAny = false;
  /**
   * REUSE_REQ was sent on this connection: the agent keeps it between operations (or, if it
   * is older than that, refuses before it reads anything else). A one-shot exec's stdin then
   * ends with STDIN_EOF instead of a half-close.
   */
  reusable = false;
  /** REUSE_RESP (or an old agent's refusal) is the next frame to come. */
  private reuseReplyPending = false;
  /** Set with `offerReuse`: takes the connection back after an operation that completed. */
  private reuseHooks: ReuseHooks | undefined;
  /** Idle in its pool: the finished operation's own close() must not touch it. */
  private pooled = false;

  constructor(
    readonly socket: Socket,
    readonly endpoint: AgentEndpoint,
  ) {
    this.reader = new FrameReader(socket, { highWaterMark: READ_HIGH_WATER_MARK });
    socket.on("error", () => {
      // Surfaced through read().
    });
  }

  get alive(): boolean {
    return (
      !this.released && !this.socket.destroyed && !this.socket.readableEnded && !this.socket.writableEnded
    );
  }

  send(type: number, payload?: Uint8Array | string): boolean {
    this.batch();
    return this.socket.write(encodeFrame(type, payload));
  }

  sendJson(type: number, value: unknown): boolean {
    this.batch();
    return this.socket.write(encodeJsonFrame(type, value));
  }

  private corked = false;

  /** Frames sent in the same tick (AUTH, the request, a half-close) leave in one writev. */
  private batch(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    process.nextTick(() => {
      this.corked = false;
      this.socket.uncork();
    });
  }

  /** Waits until the socket buffer has room again. */
  drained(): Promise<void> {
    if (!this.socket.writableNeedDrain || this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off("drain", done);
        this.socket.off("close", done);
        resolve();
      };
      this.socket.on("drain", done);
      this.socket.on("close", done);
    });
  }

  /** Asks the agent to keep this connection between operations (sent after AUTH, not awaited). */
  offerReuse(hooks: ReuseHooks): void {
    this.send(FrameType.REUSE_REQ);
    this.reusable = true;
    this.reuseReplyPending = true;
    this.reuseHooks = hooks;
  }

  /**
   * Waits up to `ms` for the answer to `offerReuse`: true if the agent keeps connections, false
   * for a refusal, another frame, a close or silence (the connection is then of no use).
   */
  async awaitReuseReply(ms: number): Promise<boolean> {
    if (!this.reuseReplyPending) return this.reusable;
    try {
      const frame = await this.reader.read(ms);
      this.reuseReplyPending = false;
      return frame?.type === FrameType.REUSE_RESP;
    } catch {
      return false;
    }
  }

  /** The next known frame, or null at a clean EOF. Transport failures become AgentConnectionError. */
  async read(): Promise<Frame | null> {
    for (;;) {
      let frame: Frame | null;
      try {
        frame = await this.reader.read();
      } catch (err) {
        throw this.translate(err);
      }
      if (frame === null) return null;
      if (this.reuseReplyPending) {
        this.reuseReplyPending = false;
        if (frame.type === FrameType.REUSE_RESP) continue;
        if (frame.type === FrameType.ERROR && frame.payload.toString("utf8") === REUSE_REFUSED_TEXT) {
          // An agent older than REUSE_REQ: it refused before reading the request, so the
          // operation may be retried on a connection without it.
          this.reuseHooks?.refused();
          this.socket.destroy();
          throw new AgentConnectionError(
            `agent at ${describeEndpoint(this.endpoint)} does not keep connections (REUSE_REQ refused)`,
            { code: "EREUSE" },
          );
        }
      }
      this.receivedAny = true;
      if (knownTypes.has(frame.type) && frame.type !== FrameType.KEEPALIVE) return frame;
    }
  }

  /** The next frame, which must exist; an ERROR frame becomes AgentError. */
  async expect(): Promise<Frame> {
    const frame = await this.read();
    if (frame === null) {
      throw new AgentConnectionError(
        `agent at ${describeEndpoint(this.endpoint)} closed the connection early`,
        {
          code: "EOF",
        },
      );
    }
    if (frame.type === FrameType.ERROR) throw new AgentError(frame.payload.toString("utf8"));
    return frame;
  }

  /**
   * Reads a frame of `type` carrying JSON that passes `check` (without one, the caller
   * only reads what it trusts). Anything else (another frame,
   * invalid JSON, a reply of the wrong shape) is an AgentProtocolError and closes the connection.
   */
  async expectJson<T>(type: number, check?: ReplyCheck<T>): Promise<T> {
    const frame = await this.expect();
    if (frame.type !== type) throw this.unexpected(frame.type);
    let value: unknown;
    try {
      value = JSON.parse(frame.payload.toString("utf8"));
    } catch {
      throw this.malformed(`invalid JSON in ${frameTypeName(type)}`);
    }
    if (check !== undefined && !check(value)) throw this.malformed(`malformed ${frameTypeName(type)}`);
    return value as T;
  }

  unexpected(type: number): AgentProtocolError {
    return this.malformed(`unexpected frame ${frameTypeName(type)}`);
  }

  /** Closes the connection and describes the agent's protocol violation. */
  malformed(what: string): AgentProtocolError {
    this.close();
    return new AgentProtocolError(`${what} from the agent at ${describeEndpoint(this.endpoint)}`);
  }

  /**
   * Fails the connection with AgentTimeoutError (pending and later reads reject with it) unless
   * the returned function is called within `ms`: the agent may be stopped or hostile.
   */
  deadline(ms: number, what: string): () => void {
    if (!Number.isFinite(ms) || ms <= 0) return () => {};
    const timer = setTimeout(() => {
      this.abortCleanup?.();
      this.abortCleanup = undefined;
      this.socket.destroy(
        new AgentTimeoutError(
          `agent at ${describeEndpoint(this.endpoint)} did not answer ${what} within ${ms} ms`,
        ),
      );
    }, ms);
    timer.unref();
    return () => clearTimeout(timer);
  }

  /** Closes the write side only: for exec, the child's stdin reaches EOF. */
  endInput(): void {
    if (!this.socket.destroyed) this.socket.end();
  }

  /**
   * Ends a one-shot exec's stdin: STDIN_EOF on a kept connection (it stays open for the next
   * operation), the half-close otherwise.
   */
  endExecInput(): void {
    if (this.reusable) this.send(FrameType.STDIN_EOF);
    else this.endInput();
  }

  /** Ties the connection to an AbortSignal: aborting destroys the socket. */
  bindSignal(signal: AbortSignal | undefined): void {
    this.abortCleanup?.();
    this.abortCleanup = undefined;
    if (signal === undefined) return;
    if (signal.aborted) {
      this.socket.destroy(abortError(signal));
      return;
    }
    const onAbort = () => this.socket.destroy(abortError(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    this.abortCleanup = () => signal.removeEventListener("abort", onAbort);
  }

  /** Removes the reader and returns bytes it had buffered (the start of a raw relay). */
  detachReader(): Buffer {
    return this.reader.detach();
  }

  close(): void {
    // Idle in the pool again: the operation that used it is over and has no say.
    if (this.pooled) return;
    this.abortCleanup?.();
    this.abortCleanup = undefined;
    // A released connection is already on its way out (and its operation is complete).
    if (!this.released) this.socket.destroy();
  }

  /** Destroys the connection, whoever holds it (the pool evicting an idle one). */
  discard(): void {
    this.pooled = false;
    this.released = true;
    this.socket.destroy();
  }

  /** The pool hands the connection to a new operation. */
  takeFromPool(): void {
    this.pooled = false;
    this.receivedAny = false;
  }

  private released = false;

  /**
   * The operation is complete (the agent sent its last frame). `reusable`: an operation the
   * agent keeps the connection after (REUSE_REQ); such a connection goes back to its pool.
   * Otherwise it is closed on the next turn of the event loop: a close is a syscall into the
   * sandbox's netstack, and the caller answers its own client first. Either way the caller's
   * hold on it ends here.
   */
  release(reusable = false): void {
    this.abortCleanup?.();
    this.abortCleanup = undefined;
    if (this.released || this.pooled || this.socket.destroyed) return;
    if (reusable && this.reusable && !this.reuseReplyPending && this.alive) {
      this.pooled = true;
      if (this.reuseHooks?.giveBack(this) === true) return;
      this.pooled = false;
    }
    this.released = true;
    setImmediate(() => this.socket.destroy());
  }

  /**
   * Ends the connection gracefully: frames already sent (e.g. the last STDIN before a
   * detach) are delivered before the FIN; the socket is destroyed once the agent closes too,
   * or after a grace period.
   */
  finish(): void {
    this.abortCleanup?.();
    this.abortCleanup = undefined;
    if (this.socket.destroyed) return;
    this.socket.end();
    const timer = setTimeout(() => this.socket.destroy(), 2_000);
    timer.unref();
    this.socket.once("close", () => clearTimeout(timer));
  }

  private translate(err: unknown): Error {
    if (err instanceof Error && (err.name === "AbortError" || err instanceof DOMException)) return err;
    if (err instanceof AgentTimeoutError) return err;
    if (err instanceof FrameError) {
      this.close();
      return new AgentProtocolError(
        `invalid frame from the agent at ${describeEndpoint(this.endpoint)}: ${err.message}`,
        { cause: err },
      );
    }
    const e = err as NodeJS.ErrnoException;
    return new AgentConnectionError(
      `connection to agent at ${describeEndpoint(this.endpoint)} failed: ${e.message}`,
      {
        cause: err,
        ...(e.code !== undefined ? { code: e.code } : {}),
      },
    );
  }
}

/** What an old agent answers to REUSE_REQ (it knows no such frame). */
const REUSE_REFUSED_TEXT = unexpectedFrameText(FrameType.REUSE_REQ);

/** How a kept connection finds its way back to the pool that dialed it. */
export interface ReuseHooks {
  /** Takes the connection back after a completed operation; false if it will not keep it. */
  giveBack(conn: AgentConnection): boolean;
  /** The agent refused REUSE_REQ: dial without it from now on. */
  refused(): void;
}

/** Dials an agent port (no AUTH yet). */
export function dialAgent(
  endpoint: AgentEndpoint,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<AgentConnection> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const socket =
      "path" in endpoint
        ? connect({ path: endpoint.path, allowHalfOpen: true })
        : connect({ host: endpoint.host, port: endpoint.port, allowHalfOpen: true, noDelay: true });
    const timer = setTimeout(() => fail(new Error(`connect timeout after ${timeoutMs} ms`)), timeoutMs);
    const onAbort = () => fail(abortError(signal!));
    signal?.addEventListener("abort", onAbort, { once: true });
    function cleanup() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      socket.off("error", onError);
    }
    function fail(err: Error) {
      cleanup();
      socket.destroy();
      if (err.name === "AbortError" || err instanceof DOMException) return reject(err);
      reject(
        new AgentConnectionError(`cannot connect to agent at ${describeEndpoint(endpoint)}: ${err.message}`, {
          cause: err,
        }),
      );
    }
    const onError = (err: Error) => fail(err);
    socket.once("error", onError);
    socket.once("connect", () => {
      cleanup();
      resolve(new AgentConnection(socket, endpoint));
    });
  });
}
