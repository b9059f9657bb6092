import type { Duplex } from "node:stream";
import { FrameDecoder, type FrameError, type Frame } from "./frame-codec.js";

export interface FrameReaderOptions {
  /** Pause the socket while this many undecoded bytes are buffered (default 4 MiB). */
  highWaterMark?: number;
}

type Waiter = {
  resolve: (frame: Frame | null) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
};

/** Rejection of `read()` when its deadline passed before a frame arrived. */
export class FrameReadTimeoutError extends Error {
  override readonly name = "FrameReadTimeoutError";
}

/**
 * Pull-style frame reader over a socket. Frames are decoded on demand, so a caller that
 * switches the connection to raw bytes (port forwarding) can take the exact remainder with
 * `detach()`. The socket is paused while the consumer lags, which propagates TCP
 * backpressure to the peer instead of buffering without limit.
 */
export class FrameReader {
  private readonly decoder = new FrameDecoder();
  private readonly highWaterMark: number;
  private waiter: Waiter | undefined;
  private ended = false;
  private failure: Error | undefined;
  private paused = false;
  private detached = false;

  private readonly onData = (chunk: Buffer) => {
    this.decoder.push(chunk);
    if (!this.paused && this.decoder.pendingBytes > this.highWaterMark) {
      this.paused = true;
      this.socket.pause();
    }
    this.wake();
  };
  private readonly onEnd = () => {
    this.ended = true;
    this.wake();
  };
  private readonly onError = (err: Error) => {
    this.failure ??= err;
    this.wake();
  };

  constructor(
    private readonly socket: Duplex,
    options: FrameReaderOptions = {},
  ) {
    this.highWaterMark = options.highWaterMark ?? 4 * 1024 * 1024;
    socket.on("data", this.onData);
    socket.on("end", this.onEnd);
    socket.on("close", this.onEnd);
    socket.on("error", this.onError);
  }

  /**
   * The next frame; `null` at a clean end of stream. Rejects with FrameError for an invalid
   * frame or an EOF inside one, with the socket's error, or with FrameReadTimeoutError when
   * `timeoutMs` passes first. After a rejection the reader is unusable.
   */
  read(timeoutMs?: number): Promise<Frame | null> {
    if (this.waiter !== undefined) return Promise.reject(new Error("FrameReader: concurrent read"));
    const ready = this.poll();
    if (ready !== undefined) return ready;
    return new Promise<Frame | null>((resolve, reject) => {
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              this.waiter = undefined;
              reject(new FrameReadTimeoutError(`no frame within ${timeoutMs} ms`));
            }, timeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  /** Stops reading frames and returns bytes received but not decoded. */
  detach(): Buffer {
    this.detached = true;
    this.socket.off("data", this.onData);
    this.socket.off("end", this.onEnd);
    this.socket.off("close", this.onEnd);
    this.socket.off("error", this.onError);
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
    return this.decoder.takeRemainder();
  }

  private poll(): Promise<Frame | null> | undefined {
    if (this.detached) return Promise.reject(new Error("FrameReader: detached"));
    let frame: Frame | undefined;
    try {
      frame = this.decoder.next();
    } catch (err) {
      this.failure ??= err as Error;
      return Promise.reject(this.failure);
    }
    if (frame !== undefined) {
      if (this.paused && this.decoder.pendingBytes <= this.highWaterMark / 2) {
        this.paused = false;
        this.socket.resume();
      }
      return Promise.resolve(frame);
    }
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.ended) {
      try {
        this.decoder.end();
      } catch (err) {
        this.failure = err as FrameError;
        return Promise.reject(this.failure);
      }
      return Promise.resolve(null);
    }
    return undefined;
  }

  private wake(): void {
    const waiter = this.waiter;
    if (waiter === undefined) return;
    const ready = this.poll();
    if (ready === undefined) return;
    this.waiter = undefined;
    if (waiter.timer !== undefined) clearTimeout(waiter.timer);
    ready.then(waiter.resolve, waiter.reject);
  }
}
