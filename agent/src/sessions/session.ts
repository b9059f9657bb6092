import {
  FrameType,
  decodeResizePayload,
  decodeSignalPayload,
  type SessionInfo,
} from "@bhatti/agent-protocol";
import type { ActivityClock } from "../activity.js";
import { signalFromFrame, signalGroup } from "../exec/command-spec.js";
import type { ControlConnection } from "../server/control-connection.js";
import { ScrollbackRing } from "./scrollback-ring.js";
import type { SessionProcess } from "./session-process.js";

export interface SessionOptions {
  id: string;
  argv: string[];
  tty: boolean;
  /** Kill the process after this many seconds without a client; 0 = never. */
  maxIdleSec: number;
  scrollbackBytes: number;
  /** How long an exited, detached session stays attachable. */
  lingerMs: number;
  activity: ActivityClock;
  /** Removes the session from its registry. */
  remove: (session: Session) => void;
}

/**
 * A long-lived process (TTY or piped) that clients attach to and detach from. Output is kept
 * in a scrollback ring; a client that attaches gets SESSION_INFO, the scrollback as one
 * STDOUT frame, then live output. All three happen in one synchronous step, so live bytes
 * can never overtake the replay.
 */
export class Session {
  readonly id: string;
  readonly createdAt = Math.floor(Date.now() / 1000);
  private readonly ring: ScrollbackRing;
  private client: ControlConnection | undefined;
  private exitCode: number | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private lingerTimer: NodeJS.Timeout | undefined;
  private outputPaused = false;
  private removed = false;

  constructor(
    private readonly proc: SessionProcess,
    private readonly options: SessionOptions,
  ) {
    this.id = options.id;
    this.ring = new ScrollbackRing(options.scrollbackBytes);
    proc.onData((chunk) => this.onOutput(chunk));
    proc.onExit((code) => this.onExit(code));
  }

  get pid(): number {
    return this.proc.pid;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  get attached(): boolean {
    return this.client !== undefined;
  }

  info(): SessionInfo {
    const info: SessionInfo = {
      session_id: this.id,
      argv: this.options.argv.join(" "),
      tty: this.options.tty,
      running: this.running,
      attached: this.attached,
      created_at: this.createdAt,
    };
    if (this.exitCode !== undefined) info.exit_code = this.exitCode;
    return info;
  }

  /** Makes `conn` the session's client, kicking any previous one with EXIT(0). */
  attach(conn: ControlConnection): void {
    const previous = this.client;
    if (previous !== undefined) {
      this.client = undefined;
      previous.sink.sendExit(0);
      previous.sink.end();
    }
    this.clearIdleTimer();

    conn.sink.sendJson(FrameType.SESSION_INFO, { ...this.info(), attached: true });
    const scrollback = this.ring.snapshot();
    if (scrollback.byteLength > 0) conn.sink.send(FrameType.STDOUT, scrollback);
    if (this.exitCode !== undefined) {
      conn.sink.sendExit(this.exitCode);
      conn.sink.end();
      this.remove();
      return;
    }
    this.client = conn;
    void this.pumpInput(conn);
  }

  /** SIGTERM (a client's KILL: a process that handles it stays reattachable) or SIGKILL. */
  signal(signal: NodeJS.Signals): void {
    if (this.running) signalGroup(this.proc.pid, signal);
  }

  /** Ends the session's process and forgets the session (agent shutdown). */
  dispose(): void {
    this.signal("SIGKILL");
    this.client?.sink.end();
    this.client = undefined;
    this.remove();
  }

  private async pumpInput(conn: ControlConnection): Promise<void> {
    for (;;) {
      let frame: Awaited<ReturnType<typeof conn.reader.read>>;
      try {
        frame = await conn.reader.read();
      } catch {
        frame = null;
      }
      if (this.client !== conn) return;
      if (frame === null) {
        this.detach();
        return;
      }
      switch (frame.type) {
        case FrameType.STDIN:
          this.options.activity.touch();
          if (frame.payload.byteLength > 0) this.proc.write(frame.payload);
          break;
        case FrameType.RESIZE: {
          const size = decodeResizePayload(frame.payload);
          if (size !== undefined && this.options.tty) this.proc.resize(size.rows, size.cols);
          break;
        }
        case FrameType.KILL:
          this.signal("SIGTERM");
          break;
        case FrameType.SIGNAL: {
          const signal = signalFromFrame(decodeSignalPayload(frame.payload));
          if (signal !== undefined) this.signal(signal);
          break;
        }
        default:
          // Unknown input frames are ignored.
          break;
      }
    }
  }

  private detach(): void {
    const conn = this.client;
    this.client = undefined;
    conn?.sink.end();
    this.resumeOutput();
    if (this.running && this.options.maxIdleSec > 0) {
      this.idleTimer = setTimeout(() => this.signal("SIGKILL"), this.options.maxIdleSec * 1000);
      this.idleTimer.unref();
    }
  }

  private onOutput(chunk: Buffer): void {
    this.ring.write(chunk);
    const conn = this.client;
    if (conn === undefined) return;
    if (!conn.sink.send(FrameType.STDOUT, chunk) && !this.outputPaused) {
      this.outputPaused = true;
      this.proc.pause();
      void conn.sink.drained().then(() => this.resumeOutput());
    }
  }

  private resumeOutput(): void {
    if (!this.outputPaused) return;
    this.outputPaused = false;
    this.proc.resume();
  }

  private onExit(code: number): void {
    this.exitCode = code;
    this.clearIdleTimer();
    const conn = this.client;
    if (conn !== undefined) {
      this.client = undefined;
      conn.sink.sendExit(code);
      conn.sink.end();
      this.remove();
      return;
    }
    if (this.options.lingerMs <= 0) {
      this.remove();
      return;
    }
    this.lingerTimer = setTimeout(() => this.remove(), this.options.lingerMs);
    this.lingerTimer.unref();
  }

  private clearIdleTimer(): void {
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private remove(): void {
    if (this.removed) return;
    this.removed = true;
    this.clearIdleTimer();
    if (this.lingerTimer !== undefined) clearTimeout(this.lingerTimer);
    this.options.remove(this);
  }
}
