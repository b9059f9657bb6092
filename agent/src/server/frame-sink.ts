import type { Socket } from "node:net";
import {
  FRAME_HEADER_SIZE,
  FrameType,
  MAX_FRAME_SIZE,
  encodeExitPayload,
  encodeFrame,
  encodeJsonFrame,
} from "@bhatti/agent-protocol";

const LARGE_PAYLOAD = 16 * 1024;

/**
 * The writing half of one connection. Each frame is one pre-built buffer and one
 * socket.write(), and Node queues writes in call order, so frames from different producers
 * (stdout and stderr pumps) never interleave.
 */
export class FrameSink {
  private corked = false;
  /**
   * On a connection kept for reuse (REUSE_REQ) a successful operation's `end()` completes the
   * operation instead of closing: the connection then serves the host's next request.
   */
  private keepOpen = false;
  /** Set by `end()` in keep-open mode: the operation completed and the connection stays. */
  private completed = false;

  constructor(readonly socket: Socket) {}

  /** Keeps the connection open after operations that complete (see `end`). */
  keepOpenBetweenOperations(): void {
    this.keepOpen = true;
  }

  /** The operation about to run is the connection's last: its `end()` closes. */
  closeAfterThisOperation(): void {
    this.keepOpen = false;
  }

  /**
   * Before the next operation on a kept connection: true if the previous one completed (its
   * `end()` ran, no ERROR) and the connection is still usable; the flag is reset.
   */
  takeCompleted(): boolean {
    const completed = this.completed && !this.closed;
    this.completed = false;
    return completed;
  }

  /**
   * Frames queued in the same tick (a reply and its EXIT, a response then the close) leave in
   * one writev instead of one syscall each; on loopback each write costs a peer wakeup.
   */
  private batch(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    process.nextTick(() => {
      this.corked = false;
      this.socket.uncork();
    });
  }

  get closed(): boolean {
    return this.socket.destroyed || this.socket.writableEnded;
  }

  /** Queues a frame; false when the socket buffer is full (see `drained`). */
  send(type: number, payload?: Uint8Array | string): boolean {
    if (this.closed) return false;
    this.batch();
    if (payload === undefined || typeof payload === "string" || payload.byteLength < LARGE_PAYLOAD) {
      return this.socket.write(encodeFrame(type, payload));
    }
    // Large payloads skip the copy into a frame buffer: header and payload are written in
    // the same tick under cork(), which Node turns into one writev, so nothing can come
    // between them.
    const header = Buffer.allocUnsafe(FRAME_HEADER_SIZE);
    header.writeUInt32BE(1 + payload.byteLength, 0);
    header[4] = type;
    if (1 + payload.byteLength > MAX_FRAME_SIZE)
      throw new RangeError(`frame too large: ${payload.byteLength}`);
    this.socket.cork();
    this.socket.write(header);
    const ok = this.socket.write(payload);
    this.socket.uncork();
    return ok;
  }

  sendJson(type: number, value: unknown): boolean {
    if (this.closed) return false;
    this.batch();
    return this.socket.write(encodeJsonFrame(type, value));
  }

  sendExit(code: number): boolean {
    return this.send(FrameType.EXIT, encodeExitPayload(code));
  }

  sendError(message: string): boolean {
    return this.send(FrameType.ERROR, message);
  }

  /** Resolves once buffered frames have been handed to the kernel (or the socket died). */
  drained(): Promise<void> {
    if (this.closed || !this.socket.writableNeedDrain) return Promise.resolve();
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

  /** Sends an ERROR frame and closes the connection after it is flushed (also a kept one). */
  fail(message: string): void {
    this.sendError(message);
    this.keepOpen = false;
    this.end();
  }

  /**
   * The operation is over: closes our side once queued frames are flushed (the socket is
   * destroyed when the peer is done too), or, on a kept connection, marks it completed.
   */
  end(): void {
    if (this.keepOpen && !this.closed) {
      this.completed = true;
      return;
    }
    this.close();
  }

  /** Closes our side once queued frames are flushed, whatever the mode. */
  close(): void {
    this.keepOpen = false;
    if (this.socket.destroyed) return;
    this.socket.end();
    // A peer that never closes its side must not keep the socket (and its connection slot) forever.
    const timer = setTimeout(() => this.socket.destroy(), 2_000);
    timer.unref();
    this.socket.once("close", () => clearTimeout(timer));
  }
}
