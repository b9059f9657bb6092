import { FrameType } from "@bhatti/agent-protocol";
import { type AgentConnection, type AgentEndpoint, dialAgent } from "./agent-connection.js";
import { abortError } from "./agent-error.js";

export interface ConnectionPoolOptions {
  /** Pre-authenticated idle connections kept ready (0 disables the pool). */
  size: number;
  /**
   * An idle connection older than this is closed rather than used. Keep it below the
   * sandbox's idle-to-pause time: a paused or restored sandbox drops its TCP connections.
   */
  idleMs: number;
}

interface IdleConnection {
  conn: AgentConnection;
  timer: NodeJS.Timeout;
}

interface PendingDial {
  /** An acquire took this dial over: the connection goes to it, not to the idle list. */
  claimed: boolean;
  /** Drained while dialing: the connection is closed on arrival. */
  drained: boolean;
  /** The connection for a claimer; undefined when it went to the idle list, was closed or failed. */
  result: Promise<AgentConnection | undefined>;
}

/**
 * Hands out authenticated connections. v1 allows one operation per connection, so the pool
 * cannot reuse a connection; instead it dials and authenticates spares ahead of demand, so
 * an operation skips the connect and AUTH round trip. Spares are only made after a use,
 * so an idle client holds nothing open for long.
 */
export class ConnectionSource {
  private readonly idle: IdleConnection[] = [];
  /** Spare dials in flight; an acquire with no idle spare takes one over instead of dialing again. */
  private readonly dialing: PendingDial[] = [];
  private closed = false;

  constructor(
    readonly endpoint: AgentEndpoint,
    private readonly token: string,
    private readonly connectTimeoutMs: number,
    private readonly pool: ConnectionPoolOptions,
  ) {}

  /** An authenticated connection; `pooled` says it was dialed earlier (and may be stale). */
  async acquire(signal?: AbortSignal, fresh = false): Promise<{ conn: AgentConnection; pooled: boolean }> {
    if (!fresh) {
      for (let entry = this.idle.pop(); entry !== undefined; entry = this.idle.pop()) {
        clearTimeout(entry.timer);
        if (entry.conn.alive) {
          entry.conn.socket.ref();
          this.refill();
          return { conn: entry.conn, pooled: true };
        }
        entry.conn.close();
      }
      const pending = this.dialing.find((d) => !d.claimed && !d.drained);
      if (pending !== undefined && signal?.aborted !== true) {
        pending.claimed = true;
        const conn = await untilAborted(pending.result, signal);
        if (conn?.alive === true) {
          conn.socket.ref();
          this.refill();
          return { conn, pooled: true };
        }
        conn?.close();
      }
    }
    const conn = await this.dial(signal);
    this.refill();
    return { conn, pooled: false };
  }

  /**
   * Starts dialing spares now (up to the pool size) without waiting. Used right before a
   * sandbox is thawed: the connect and AUTH queue in the frozen sandbox and complete while the
   * wake's answer travels back, so the next operation finds a spare ready.
   */
  prewarm(): void {
    this.refill();
  }

  /** Closes idle connections; later acquires dial again (e.g. after a sandbox restore). */
  drain(): void {
    for (const entry of this.idle.splice(0)) {
      clearTimeout(entry.timer);
      entry.conn.close();
    }
    // Dials in flight may predate the restore too: nobody gets them.
    for (const d of this.dialing) d.drained = true;
  }

  close(): void {
    this.closed = true;
    this.drain();
  }

  private async dial(signal?: AbortSignal): Promise<AgentConnection> {
    const conn = await dialAgent(this.endpoint, this.connectTimeoutMs, signal);
    if (this.token !== "") conn.send(FrameType.AUTH, this.token);
    return conn;
  }

  private refill(): void {
    if (this.closed || this.pool.size <= 0) return;
    const spares = this.dialing.filter((d) => !d.claimed && !d.drained).length;
    if (this.idle.length + spares >= this.pool.size) return;
    const pending: PendingDial = {
      claimed: false,
      drained: false,
      result: this.dial().then(
        (conn) => {
          this.forget(pending);
          // A drained dial is closed even if claimed: its claimer dials afresh (result undefined).
          if (pending.drained) {
            conn.close();
            return undefined;
          }
          if (pending.claimed) return conn;
          if (this.closed || this.idle.length >= this.pool.size) {
            conn.close();
            return undefined;
          }
          const entry: IdleConnection = {
            conn,
            timer: setTimeout(() => this.evict(entry), this.pool.idleMs),
          };
          entry.timer.unref();
          conn.socket.unref();
          conn.socket.once("close", () => this.evict(entry));
          this.idle.push(entry);
          return undefined;
        },
        () => {
          this.forget(pending);
          return undefined;
        },
      ),
    };
    this.dialing.push(pending);
  }

  private forget(pending: PendingDial): void {
    const i = this.dialing.indexOf(pending);
    if (i >= 0) this.dialing.splice(i, 1);
  }

  private evict(entry: IdleConnection): void {
    const i = this.idle.indexOf(entry);
    if (i >= 0) this.idle.splice(i, 1);
    clearTimeout(entry.timer);
    entry.conn.close();
  }
}

/** The dial's connection, or the abort; a connection arriving after the abort is closed. */
function untilAborted(
  result: Promise<AgentConnection | undefined>,
  signal: AbortSignal | undefined,
): Promise<AgentConnection | undefined> {
  if (signal === undefined) return result;
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      void result.then((conn) => conn?.close());
      reject(abortError(signal));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    void result.then((conn) => {
      signal.removeEventListener("abort", onAbort);
      if (!signal.aborted) resolve(conn);
    });
  });
}
