import { FrameType } from "@bhatti/agent-protocol";
import { type AgentConnection, type AgentEndpoint, type ReuseHooks, dialAgent } from "./agent-connection.js";

export interface ConnectionPoolOptions {
  /** Pre-authenticated idle connections kept ready (0 disables the pool). */
  size: number;
  /**
   * An idle connection older than this is closed rather than used. Keep it below the
   * sandbox's idle-to-pause time: a paused or restored sandbox drops its TCP connections.
   */
  idleMs: number;
  /**
   * Idle connections kept at most, counting those that came back after an operation (agents
   * that keep connections, REUSE_REQ): enough for a burst of concurrent operations to find
   * one each next time. Default 16; never below `size`.
   */
  maxIdle?: number;
}

interface IdleConnection {
  conn: AgentConnection;
  timer: NodeJS.Timeout;
}

/** What this client knows of the agent's REUSE_REQ support. */
type ReuseSupport = "unknown" | "probing" | "yes" | "no";

const DEFAULT_MAX_IDLE = 16;

/**
 * Hands out authenticated connections. v1 allowed one operation per connection; an agent of
 * this version keeps a connection between operations when asked (REUSE_REQ), so a connection
 * whose operation completed comes back here and the next operation skips the connect, the
 * AUTH and the close (each a round into the sandbox's netstack and the agent's loop). Whether
 * the agent does is learned once per pool, on a spare dialed in the background, and forgotten
 * by `drain` (a restored sandbox may run another agent). Until then, and for an agent that
 * does not, the pool dials and authenticates spares ahead of demand, as before: only after a
 * use, so an idle client holds nothing open for long.
 */
export class ConnectionSource {
  private readonly idle: IdleConnection[] = [];
  private dialing = 0;
  private refillQueued = false;
  private closed = false;
  private reuse: ReuseSupport;
  private readonly maxIdle: number;
  /** Connections whose close is watched (once each, however often reused). */
  private readonly watched = new WeakSet<AgentConnection>();
  /** Connections the pool itself closed (drained, idled out): their close dials no spare. */
  private readonly dropped = new WeakSet<AgentConnection>();
  private readonly hooks: ReuseHooks = {
    giveBack: (conn) => this.giveBack(conn),
    refused: () => {
      this.reuse = "no";
    },
  };

  constructor(
    readonly endpoint: AgentEndpoint,
    private readonly token: string,
    private readonly connectTimeoutMs: number,
    private readonly pool: ConnectionPoolOptions,
  ) {
    // A client without a pool keeps nothing, so there is nothing to reuse.
    this.reuse = pool.size > 0 ? "unknown" : "no";
    this.maxIdle = Math.max(pool.size, pool.maxIdle ?? DEFAULT_MAX_IDLE);
  }

  /** An authenticated connection; `pooled` says it was dialed earlier (and may be stale). */
  async acquire(signal?: AbortSignal, fresh = false): Promise<{ conn: AgentConnection; pooled: boolean }> {
    if (!fresh) {
      for (let entry = this.idle.pop(); entry !== undefined; entry = this.idle.pop()) {
        clearTimeout(entry.timer);
        entry.conn.takeFromPool();
        if (entry.conn.alive) {
          entry.conn.socket.ref();
          this.replaceAfter(entry.conn);
          return { conn: entry.conn, pooled: true };
        }
        this.drop(entry.conn);
      }
    }
    const conn = await this.dial(signal);
    this.replaceAfter(conn);
    return { conn, pooled: false };
  }

  /**
   * Closes idle connections; later acquires dial again (e.g. after a sandbox restore). Whether
   * the agent keeps connections is learned again too.
   */
  drain(): void {
    for (const entry of this.idle.splice(0)) {
      clearTimeout(entry.timer);
      this.drop(entry.conn);
    }
    if (this.reuse !== "probing" && this.pool.size > 0) this.reuse = "unknown";
  }

  close(): void {
    this.closed = true;
    this.drain();
  }

  private async dial(signal?: AbortSignal): Promise<AgentConnection> {
    const conn = await dialAgent(this.endpoint, this.connectTimeoutMs, signal);
    if (this.token !== "") conn.send(FrameType.AUTH, this.token);
    // Known to keep connections: asked in the same write as AUTH and the request, not awaited.
    if (this.reuse === "yes") conn.offerReuse(this.hooks);
    return conn;
  }

  /** A connection whose operation completed, back from its user; false if not kept. */
  private giveBack(conn: AgentConnection): boolean {
    if (this.closed || this.idle.length >= this.maxIdle) return false;
    this.keepIdle(conn);
    return true;
  }

  private keepIdle(conn: AgentConnection): void {
    const entry: IdleConnection = {
      conn,
      timer: setTimeout(() => this.evict(conn), this.pool.idleMs),
    };
    entry.timer.unref();
    conn.socket.unref();
    this.idle.push(entry);
  }

  /**
   * Dials the spare that replaces `conn` once `conn` is closed (its operation is over), so that
   * its connect and AUTH do not compete with the operation inside the sandbox; only when no
   * spare is left is one dialed at once, for the next concurrent operation.
   */
  private replaceAfter(conn: AgentConnection): void {
    this.watch(conn);
    if (this.idle.length === 0) this.refillSoon();
  }

  /**
   * On close: an idle connection leaves the pool (the agent or the network closed it); one that
   * closed after its operation (not kept) is replaced by a spare.
   */
  private watch(conn: AgentConnection): void {
    if (this.watched.has(conn)) return;
    this.watched.add(conn);
    conn.socket.once("close", () => {
      const wasIdle = this.evict(conn);
      if (!wasIdle && !this.dropped.has(conn)) this.refillSoon();
    });
  }

  /** Closes a connection the pool no longer wants. */
  private drop(conn: AgentConnection): void {
    this.dropped.add(conn);
    conn.discard();
  }

  /**
   * Dials the replacement spare after the caller's request went out: the caller sends in this
   * tick (its frames leave on the next one), and a connect made first would delay them by a
   * connect syscall (a netstack round into the sandbox).
   */
  private refillSoon(): void {
    if (this.refillQueued) return;
    this.refillQueued = true;
    setImmediate(() => {
      this.refillQueued = false;
      this.refill();
    });
  }

  private refill(): void {
    if (this.closed || this.pool.size <= 0 || this.idle.length + this.dialing >= this.pool.size) return;
    this.dialing++;
    const probe = this.reuse === "unknown";
    if (probe) this.reuse = "probing";
    this.dialSpare(probe).then(
      (conn) => {
        this.dialing--;
        if (probe && this.reuse === "probing") this.reuse = conn?.reusable === true ? "yes" : "no";
        if (conn === undefined) {
          // The probe's connection was refused or useless; a plain spare instead.
          if (probe) this.refillSoon();
          return;
        }
        if (this.closed || this.idle.length >= this.pool.size) return this.drop(conn);
        this.watch(conn);
        this.keepIdle(conn);
      },
      () => {
        this.dialing--;
        if (probe && this.reuse === "probing") this.reuse = "unknown";
      },
    );
  }

  /**
   * One spare. The first one of a pool (`probe`) also learns whether the agent keeps
   * connections: it asks and waits for the answer (in the background, off every operation's
   * path). undefined: the probe's connection is of no use (an old agent closes it).
   */
  private async dialSpare(probe: boolean): Promise<AgentConnection | undefined> {
    const conn = await this.dial();
    if (!probe) return conn;
    conn.offerReuse(this.hooks);
    if (await conn.awaitReuseReply(this.connectTimeoutMs)) return conn;
    this.drop(conn);
    return undefined;
  }

  /** Takes `conn` out of the idle list and closes it; false if it was not idle there. */
  private evict(conn: AgentConnection): boolean {
    const i = this.idle.findIndex((e) => e.conn === conn);
    if (i < 0) return false;
    const [entry] = this.idle.splice(i, 1);
    if (entry !== undefined) clearTimeout(entry.timer);
    this.drop(conn);
    return true;
  }
}
