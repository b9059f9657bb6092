import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openStoreDatabase, type SqliteDatabase } from "../adapters/sqlite-database.js";
import { codeOf } from "../testing/connect-code.js";
import { makeTestDir, removeTestDir } from "../testing/store-process.js";
import { type EventLog, createEventLog } from "./events.js";

describe("event log", () => {
  let dir: string;
  let db: SqliteDatabase;
  let log: EventLog;
  beforeEach(() => {
    dir = makeTestDir("events");
    db = openStoreDatabase(join(dir, "state.db"));
    log = createEventLog(db);
  });
  afterEach(() => {
    db.close();
    removeTestDir(dir);
  });

  it("filters by type prefix, user, sandbox and time, newest first, with paging", () => {
    log.append([
      { type: "thermal.pause", userId: "u1", sandboxId: "s1" },
      { type: "thermal.force_pause", userId: "u1", sandboxId: "s2" },
      { type: "sandbox.created", userId: "u2", sandboxId: "s3", meta: { name: "x" } },
      { type: "auth.failed" },
    ]);
    expect(log.query({ typePrefix: "thermal." }).events.map((e) => e.type)).toEqual([
      "thermal.force_pause",
      "thermal.pause",
    ]);
    // "_" in a prefix is literal, not a LIKE wildcard.
    expect(log.query({ typePrefix: "thermal.force_" }).total).toBe(1);
    expect(log.query({ typePrefix: "thermal.pause" }).total).toBe(1);
    expect(log.query({ userId: "u1" }).total).toBe(2);
    expect(log.query({ sandboxId: "s3" }).events[0]?.meta).toBe('{"name":"x"}');
    const page1 = log.query({ limit: 2 });
    expect(page1.total).toBe(4);
    expect(page1.events).toHaveLength(2);
    const page2 = log.query({ limit: 2, beforeId: page1.events[1]?.id ?? 0 });
    expect(page2.events.map((e) => e.type)).toEqual(["thermal.force_pause", "thermal.pause"]);
    expect(log.query({ since: "2999-01-01T00:00:00.000Z" }).total).toBe(0);
    expect(log.query({ until: "2000-01-01T00:00:00.000Z" }).total).toBe(0);
  });

  it("refuses unknown types, bad or oversize meta, and appends a batch all or nothing", () => {
    expect(codeOf(() => log.append([{ type: "sandbox.exploded" }]))).toBe(Code.InvalidArgument);
    expect(codeOf(() => log.append([{ type: "sandbox.created", meta: "[1,2]" }]))).toBe(Code.InvalidArgument);
    expect(codeOf(() => log.append([{ type: "sandbox.created", meta: "{oops" }]))).toBe(Code.InvalidArgument);
    expect(codeOf(() => log.append([{ type: "sandbox.created", meta: { blob: "x".repeat(20_000) } }]))).toBe(
      Code.InvalidArgument,
    );
    expect(codeOf(() => log.append([{ type: "sandbox.created" }, { type: "nope.nope" }]))).toBe(
      Code.InvalidArgument,
    );
    expect(log.count()).toBe(0);
  });

  it("prunes events older than the retention cut-off", () => {
    db.prepare("INSERT INTO events (ts, type) VALUES ('2020-01-01T00:00:00.000Z', 'daemon.started')").run();
    log.append([{ type: "daemon.started" }]);
    expect(log.prune(new Date(Date.now() - 86_400_000).toISOString())).toBe(1);
    expect(log.count()).toBe(1);
  });
});

describe("counted events", () => {
  let dir: string;
  let db: SqliteDatabase;
  beforeEach(() => {
    dir = makeTestDir("events-counted");
    db = openStoreDatabase(join(dir, "state.db"));
  });
  afterEach(() => {
    db.close();
    removeTestDir(dir);
  });

  const metaOf = (log: EventLog, remote: string) =>
    log
      .query({ typePrefix: "auth.failed", limit: 100 })
      .events.map((e) => JSON.parse(e.meta) as { remote_addr: string; count: number })
      .filter((m) => m.remote_addr === remote);

  it("keeps one row per group per window, with an exact count for readers", () => {
    let now = 1_000_000_000_000;
    const log = createEventLog(db, { now: () => now, countWindowMs: 60_000, countWriteMs: 5_000 });
    for (let i = 0; i < 500; i++) log.recordCounted("auth.failed", "10.0.0.1", { remote_addr: "10.0.0.1" });
    for (let i = 0; i < 3; i++) log.recordCounted("auth.failed", "10.0.0.2", { remote_addr: "10.0.0.2" });
    expect(log.count()).toBe(2);
    expect(metaOf(log, "10.0.0.1").map((m) => m.count)).toEqual([500]);
    expect(metaOf(log, "10.0.0.2").map((m) => m.count)).toEqual([3]);
    // Between reads, the row on disk lags by at most the write interval...
    for (let i = 0; i < 10; i++) log.recordCounted("auth.failed", "10.0.0.1", { remote_addr: "10.0.0.1" });
    const raw = db.prepare("SELECT meta FROM events WHERE meta LIKE '%10.0.0.1%'").get() as { meta: string };
    expect((JSON.parse(raw.meta) as { count: number }).count).toBe(500);
    // ...and flushCounts (also run at close) writes it.
    log.flushCounts();
    const flushed = db.prepare("SELECT meta FROM events WHERE meta LIKE '%10.0.0.1%'").get() as {
      meta: string;
    };
    expect((JSON.parse(flushed.meta) as { count: number }).count).toBe(510);
    // A new minute starts a new row.
    now += 60_000;
    log.recordCounted("auth.failed", "10.0.0.1", { remote_addr: "10.0.0.1" });
    expect(metaOf(log, "10.0.0.1").map((m) => m.count)).toEqual([1, 510]);
  });

  it("bounds the groups it tracks; every attempt is still counted somewhere", () => {
    const log = createEventLog(db, { maxCountedGroups: 4 });
    for (let i = 0; i < 20; i++)
      log.recordCounted("auth.failed", `10.0.1.${i % 10}`, { remote_addr: `10.0.1.${i % 10}` });
    const rows = log.query({ typePrefix: "auth.failed", limit: 100 }).events;
    const total = rows.reduce((n, e) => n + (JSON.parse(e.meta) as { count: number }).count, 0);
    expect(total).toBe(20);
    expect(rows.length).toBeLessThanOrEqual(20);
  });
});
