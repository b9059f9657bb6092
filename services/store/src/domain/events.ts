import { Code, ConnectError } from "@connectrpc/connect";
import type { SqliteDatabase } from "../adapters/sqlite-database.js";
import { nowIso } from "./clock.js";
import { EVENT_TYPES, type EventType, isEventType } from "./event-types.js";

export interface NewEventInput {
  type: string;
  userId?: string;
  sandboxId?: string;
  /** A JSON object; a string is taken as already-encoded JSON. */
  meta?: Record<string, unknown> | string;
}

export interface EventRow {
  id: number;
  ts: string;
  type: string;
  user_id: string;
  sandbox_id: string;
  meta: string;
}

export interface EventQuery {
  since?: string;
  until?: string;
  typePrefix?: string;
  userId?: string;
  sandboxId?: string;
  limit?: number;
  beforeId?: number;
}

/** Largest meta JSON accepted per event; events describe, they do not carry payloads. */
export const MAX_EVENT_META_BYTES = 16 * 1024;
export const MAX_EVENTS_PER_APPEND = 1000;
export const MAX_EVENT_QUERY_LIMIT = 10_000;

export interface EventLogOptions {
  /** Repeats of a counted event share one row per group within this window (1 minute). */
  countWindowMs?: number;
  /** A counted row's count is written back at most this often (readers always see it exact). */
  countWriteMs?: number;
  /** Bound on groups counted at once; the oldest is written out and dropped first. */
  maxCountedGroups?: number;
  now?: () => number;
}

/**
 * The append-only event log. `append` validates every event first and writes them all in one
 * transaction (all or nothing); `record` is the in-process shortcut the store's own domain
 * code uses inside its transactions, so an event and the change it describes commit together.
 */
export interface EventLog {
  append(events: readonly NewEventInput[]): number[];
  record(type: EventType, fields?: Omit<NewEventInput, "type">): number;
  /**
   * Records a repeat-prone event (auth.failed) as one row per `group` per window whose meta
   * carries `count`, `first_at` and `last_at`: a flood of attempts costs one insert per window
   * and a few updates, not one fsynced row per attempt.
   */
  recordCounted(type: EventType, group: string, meta: Record<string, unknown>): void;
  /** Writes pending counts (done before every read and at close). */
  flushCounts(): void;
  query(q: EventQuery): { events: EventRow[]; total: number };
  /** Deletes events older than `beforeIso`; returns how many. */
  prune(beforeIso: string): number;
  count(): number;
}

interface CountedRow {
  readonly id: number;
  readonly window: number;
  readonly meta: Record<string, unknown>;
  count: number;
  written: number;
  writtenAt: number;
  lastAt: string;
}

export function createEventLog(db: SqliteDatabase, options: EventLogOptions = {}): EventLog {
  const now = options.now ?? Date.now;
  const countWindowMs = options.countWindowMs ?? 60_000;
  const countWriteMs = options.countWriteMs ?? 5_000;
  const maxCountedGroups = options.maxCountedGroups ?? 10_000;
  const insert = db.prepare(
    "INSERT INTO events (ts, type, user_id, sandbox_id, meta) VALUES (?, ?, ?, ?, ?)",
  );
  const setMeta = db.prepare("UPDATE events SET meta = ? WHERE id = ?");
  /** Counted rows of the current window, by type and group (insertion order = oldest first). */
  const counted = new Map<string, CountedRow>();
  const prune = db.prepare("DELETE FROM events WHERE ts < ?");
  const countAll = db.prepare<[], { n: number }>("SELECT count(*) AS n FROM events");

  const normalize = (e: NewEventInput): [string, string, string, string] => {
    if (!isEventType(e.type)) {
      throw new ConnectError(
        `unknown event type ${JSON.stringify(e.type.slice(0, 64))} (known: ${EVENT_TYPES.join(", ")})`,
        Code.InvalidArgument,
      );
    }
    let meta: string;
    if (e.meta === undefined || e.meta === "") meta = "{}";
    else if (typeof e.meta === "string") {
      let parsed: unknown;
      try {
        parsed = JSON.parse(e.meta);
      } catch {
        throw new ConnectError(`event ${e.type}: meta is not valid JSON`, Code.InvalidArgument);
      }
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
        throw new ConnectError(`event ${e.type}: meta must be a JSON object`, Code.InvalidArgument);
      }
      meta = e.meta;
    } else meta = JSON.stringify(e.meta);
    if (Buffer.byteLength(meta) > MAX_EVENT_META_BYTES) {
      throw new ConnectError(
        `event ${e.type}: meta is ${Buffer.byteLength(meta)} bytes, more than the ${MAX_EVENT_META_BYTES} allowed`,
        Code.InvalidArgument,
      );
    }
    return [e.type, e.userId ?? "", e.sandboxId ?? "", meta];
  };

  const appendAll = db.transaction((rows: [string, string, string, string][]) => {
    const ts = nowIso();
    return rows.map((r) => Number(insert.run(ts, ...r).lastInsertRowid));
  });

  const countedMeta = (row: CountedRow) =>
    JSON.stringify({ ...row.meta, count: row.count, last_at: row.lastAt });

  const writeCount = (row: CountedRow) => {
    if (row.written === row.count) return;
    setMeta.run(countedMeta(row), row.id);
    row.written = row.count;
    row.writtenAt = now();
  };

  const flushCountsTx = db.transaction(() => {
    const window = Math.floor(now() / countWindowMs);
    for (const [key, row] of counted) {
      writeCount(row);
      if (row.window !== window) counted.delete(key);
    }
  });

  const flushCounts = {
    immediate() {
      if (counted.size > 0) flushCountsTx.immediate();
    },
  };

  const log: EventLog = {
    append(events) {
      if (events.length > MAX_EVENTS_PER_APPEND) {
        throw new ConnectError(
          `too many events in one append (${events.length} > ${MAX_EVENTS_PER_APPEND})`,
          Code.InvalidArgument,
        );
      }
      return appendAll.immediate(events.map(normalize));
    },
    record(type, fields = {}) {
      return Number(insert.run(nowIso(), ...normalize({ ...fields, type })).lastInsertRowid);
    },
    recordCounted(type, group, meta) {
      const t = now();
      const window = Math.floor(t / countWindowMs);
      const key = `${type}\u0000${group}`;
      const row = counted.get(key);
      if (row !== undefined && row.window === window) {
        row.count++;
        row.lastAt = new Date(t).toISOString();
        if (t - row.writtenAt >= countWriteMs) writeCount(row);
        return;
      }
      if (row !== undefined) {
        writeCount(row);
        counted.delete(key);
      }
      if (counted.size >= maxCountedGroups) {
        flushCounts.immediate();
        for (const k of counted.keys()) {
          if (counted.size < maxCountedGroups) break;
          counted.delete(k);
        }
      }
      const at = new Date(t).toISOString();
      const first = { ...meta, first_at: at };
      const id = Number(
        insert.run(at, ...normalize({ type, meta: { ...first, count: 1, last_at: at } })).lastInsertRowid,
      );
      counted.set(key, { id, window, meta: first, count: 1, written: 1, writtenAt: t, lastAt: at });
    },
    flushCounts: () => flushCounts.immediate(),
    query(q) {
      flushCounts.immediate();
      const where: string[] = [];
      const args: (string | number)[] = [];
      const add = (clause: string, value: string | number) => {
        where.push(clause);
        args.push(value);
      };
      if (q.since) add("ts >= ?", q.since);
      if (q.until) add("ts < ?", q.until);
      if (q.typePrefix) {
        // Escaped LIKE so "_" in a type is literal; "thermal." matches thermal.pause etc.
        add("type LIKE ? ESCAPE '\\'", `${q.typePrefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
      }
      if (q.userId) add("user_id = ?", q.userId);
      if (q.sandboxId) add("sandbox_id = ?", q.sandboxId);
      const filter = where.length > 0 ? `WHERE ${where.join(" AND ")}` : "";
      const total = (db.prepare(`SELECT count(*) AS n FROM events ${filter}`).get(...args) as { n: number })
        .n;
      const limit = Math.min(q.limit && q.limit > 0 ? q.limit : 50, MAX_EVENT_QUERY_LIMIT);
      const paged = q.beforeId && q.beforeId > 0 ? [...where, "id < ?"] : where;
      const pageArgs = q.beforeId && q.beforeId > 0 ? [...args, q.beforeId] : args;
      const events = db
        .prepare(
          `SELECT id, ts, type, user_id, sandbox_id, meta FROM events ${
            paged.length > 0 ? `WHERE ${paged.join(" AND ")}` : ""
          } ORDER BY id DESC LIMIT ?`,
        )
        .all(...pageArgs, limit) as EventRow[];
      return { events, total };
    },
    prune(beforeIso) {
      flushCounts.immediate();
      return prune.run(beforeIso).changes;
    },
    count() {
      flushCounts.immediate();
      return countAll.get()?.n ?? 0;
    },
  };
  return log;
}
