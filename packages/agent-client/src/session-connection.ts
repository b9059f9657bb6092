import { FrameType, decodeExitPayload, encodeResizePayload, type SessionInfo } from "@bhatti/agent-protocol";
import type { AgentConnection } from "./agent-connection.js";

export type SessionEvent = { type: "output"; data: Buffer } | { type: "exit"; exitCode: number };

/**
 * A client attached to a TTY or piped session. The first output event after attaching is
 * the scrollback replay. Closing (detach()) leaves the process running; an "exit" event
 * with code 0 can also mean another client took the session over.
 */
export class SessionConnection implements AsyncIterable<SessionEvent> {
  constructor(
    private readonly conn: AgentConnection,
    /** SESSION_INFO as the agent sent it on attach. */
    readonly info: SessionInfo,
  ) {}

  get sessionId(): string {
    return this.info.session_id;
  }

  async write(data: Uint8Array | string): Promise<void> {
    const bytes = typeof data === "string" ? Buffer.from(data) : data;
    for (let off = 0; off < bytes.byteLength; off += 512 * 1024) {
      if (!this.conn.send(FrameType.STDIN, bytes.subarray(off, off + 512 * 1024))) await this.conn.drained();
    }
  }

  resize(rows: number, cols: number): void {
    if (this.conn.alive) this.conn.send(FrameType.RESIZE, encodeResizePayload({ rows, cols }));
  }

  /** SIGTERM to the session's process group (a process that handles it stays attachable). */
  kill(): void {
    if (this.conn.alive) this.conn.send(FrameType.KILL);
  }

  /** Disconnects; the session keeps running and can be reattached. */
  detach(): void {
    this.conn.finish();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<SessionEvent> {
    try {
      for (;;) {
        const frame = await this.conn.expect();
        if (frame.type === FrameType.STDOUT || frame.type === FrameType.STDERR) {
          yield { type: "output", data: frame.payload };
        } else if (frame.type === FrameType.EXIT) {
          yield { type: "exit", exitCode: decodeExitPayload(frame.payload) ?? 1 };
          return;
        } else if (frame.type !== FrameType.SESSION_INFO) {
          throw this.conn.unexpected(frame.type);
        }
      }
    } finally {
      this.conn.close();
    }
  }
}
