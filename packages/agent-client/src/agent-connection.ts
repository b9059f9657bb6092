import { connect, type Socket } from "node:net";
import {
  FrameError,
  FrameReader,
  FrameType,
  encodeFrame,
  encodeJsonFrame,
  frameTypeName,
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
  /** True once any frame arrived from the agent. */
  receivedAny = false;

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
    this.abortCleanup?.();
    this.abortCleanup = undefined;
    // A released connection is already on its way out (and its operation is complete).
    if (!this.released) this.socket.destroy();
  }

  private released = false;

  /**
   * Closes a connection whose operation is complete (the agent sent its last frame) on the next
   * turn of the event loop: a close is a syscall into the sandbox's netstack, and the caller
   * answers its own client first. The connection is not alive from now on.
   */
  release(): void {
    this.abortCleanup?.();
    this.abortCleanup = undefined;
    if (this.released || this.socket.destroyed) return;
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
