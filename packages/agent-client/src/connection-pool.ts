import { FrameType } from "@bhatti/agent-protocol";
import { type AgentConnection, type AgentEndpoint, dialAgent } from "./agent-connection.js";

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

/**
 * Hands out authenticated connections. v1 allows one operation per connection, so the pool
 * cannot reuse a connection; instead it dials and authenticates spares ahead of demand, so
 * an operation skips the connect and AUTH round trip. Spares are only made after a use,
 * so an idle client holds nothing open for long.
 */
export class ConnectionSource {
  private readonly idle: IdleConnection[] = [];
  private dialing = 0;
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
    }
    const conn = await this.dial(signal);
    this.refill();
    return { conn, pooled: false };
  }

  /** Closes idle connections; later acquires dial again (e.g. after a sandbox restore). */
  drain(): void {
    for (const entry of this.idle.splice(0)) {
      clearTimeout(entry.timer);
      entry.conn.close();
    }
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
    if (this.closed || this.pool.size <= 0 || this.idle.length + this.dialing >= this.pool.size) return;
    this.dialing++;
    this.dial().then(
      (conn) => {
        this.dialing--;
        if (this.closed || this.idle.length >= this.pool.size) return conn.close();
        const entry: IdleConnection = {
          conn,
          timer: setTimeout(() => this.evict(entry), this.pool.idleMs),
        };
        entry.timer.unref();
        conn.socket.unref();
        conn.socket.once("close", () => this.evict(entry));
        this.idle.push(entry);
      },
      () => {
        this.dialing--;
      },
    );
  }

  private evict(entry: IdleConnection): void {
    const i = this.idle.indexOf(entry);
    if (i >= 0) this.idle.splice(i, 1);
    clearTimeout(entry.timer);
    entry.conn.close();
  }
}
