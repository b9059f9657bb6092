import { FrameType, decodeExitPayload } from "@bhatti/agent-protocol";
import type { AgentConnection } from "./agent-connection.js";

export type ExecEvent =
  | { type: "stdout"; data: Buffer }
  | { type: "stderr"; data: Buffer }
  | { type: "exit"; exitCode: number };

/**
 * A running one-shot exec. Iterate it for output and the final exit event; write() feeds
 * stdin, closeStdin() sends EOF (STDIN_EOF or a half-close), kill() SIGKILLs the process group.
 */
export class ExecProcess implements AsyncIterable<ExecEvent> {
  private finished = false;
  private stdinClosed = false;
  /** The exec completed and its connection went back to the pool: it may serve others now. */
  private handedBack = false;

  constructor(private readonly conn: AgentConnection) {}

  /** Sends stdin bytes; resolves when the socket can take more. */
  async write(data: Uint8Array | string): Promise<void> {
    const bytes = typeof data === "string" ? Buffer.from(data) : data;
    for (let off = 0; off < bytes.byteLength; off += 512 * 1024) {
      if (!this.conn.send(FrameType.STDIN, bytes.subarray(off, off + 512 * 1024))) await this.conn.drained();
    }
  }

  /**
   * Ends the command's stdin: STDIN_EOF on a connection the agent keeps (it goes back to the
   * pool after EXIT), a half-close otherwise. Either way the agent reads nothing more of this
   * exec: a later kill() must be followed by close(), which the agent answers by killing the
   * command's process group.
   */
  closeStdin(): void {
    this.stdinClosed = true;
    this.conn.endExecInput();
  }

  kill(): void {
    if (!this.finished && this.conn.alive) this.conn.send(FrameType.KILL);
  }

  /** Drops the connection (unless the exec completed); the agent then SIGKILLs the command. */
  close(): void {
    this.finished = true;
    if (!this.handedBack) this.conn.close();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ExecEvent> {
    try {
      for (;;) {
        const frame = await this.conn.expect();
        switch (frame.type) {
          case FrameType.STDOUT:
            yield { type: "stdout", data: frame.payload };
            break;
          case FrameType.STDERR:
            yield { type: "stderr", data: frame.payload };
            break;
          case FrameType.EXIT:
            this.finished = true;
            // Back to the pool if the agent keeps the connection and stdin was ended.
            this.handedBack = true;
            this.conn.release(this.stdinClosed);
            yield { type: "exit", exitCode: decodeExitPayload(frame.payload) ?? 1 };
            return;
          default:
            throw this.conn.unexpected(frame.type);
        }
      }
    } finally {
      this.finished = true;
      if (!this.handedBack) this.conn.close();
    }
  }
}
