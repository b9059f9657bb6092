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

/**
 * The append-only event log. `append` validates every event first and writes them all in one
 * transaction (all or nothing); `record` is the in-process shortcut the store's own domain
 * code uses inside its transactions, so an event and the change it describes commit together.
 */
export interface EventLog {
  append(events: readonly NewEventInput[]): number[];
  record(type: EventType, fields?: Omit<NewEventInput, "type">): number;
  query(q: EventQuery): { events: EventRow[]; total: number };
  /** Deletes events older than `beforeIso`; returns how many. */
  prune(beforeIso: string): number;
  count(): number;
}

export function createEventLog(db: SqliteDatabase): EventLog {
  const insert = db.prepare(
    "INSERT INTO events (ts, type, user_id, sandbox_id, meta) VALUES (?, ?, ?, ?, ?)",
  );
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

  return {
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
    query(q) {
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
    prune: (beforeIso) => prune.run(beforeIso).changes,
    count: () => countAll.get()?.n ?? 0,
  };
}
