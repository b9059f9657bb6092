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
