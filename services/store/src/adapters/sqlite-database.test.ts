import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeTestDir, removeTestDir } from "../testing/store-process.js";
import { storeMigrations } from "./migrations.js";
import { DatabaseRefusedError, openStoreDatabase, schemaVersion } from "./sqlite-database.js";

describe("openStoreDatabase", () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = makeTestDir("sqlite");
    path = join(dir, "state.db");
  });
  afterEach(() => removeTestDir(dir));

  it("creates every table from empty with WAL, foreign keys and FULL sync", () => {
    const db = openStoreDatabase(path);
    try {
      expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
      expect(db.pragma("foreign_keys", { simple: true })).toBe(1);
      expect(db.pragma("synchronous", { simple: true })).toBe(2);
      expect(db.pragma("busy_timeout", { simple: true })).toBe(5000);
      const tables = (
        db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").all() as { name: string }[]
      )
        .map((t) => t.name)
        .sort();
      for (const t of [
        "users",
        "sandboxes",
        "volumes",
        "volume_attachments",
        "images",
        "image_shares",
        "snapshots",
        "publish_rules",
        "shell_tokens",
        "tasks",
        "secrets",
        "events",
        "metrics_snapshots",
        "user_subnets",
        "sandbox_addresses",
        "schema_migrations",
      ]) {
        expect(tables).toContain(t);
      }
      expect(schemaVersion(db)).toBe(storeMigrations.at(-1)?.version);
    } finally {
      db.close();
    }
  });

  it("re-opening applies nothing twice and keeps data", () => {
    const db = openStoreDatabase(path);
    db.prepare("INSERT INTO events (ts, type) VALUES ('2026-01-01T00:00:00.000Z', 'daemon.started')").run();
    db.close();
    const again = openStoreDatabase(path);
    try {
      expect(again.prepare("SELECT count(*) AS n FROM schema_migrations").get()).toEqual({
        n: storeMigrations.length,
      });
      expect(again.prepare("SELECT count(*) AS n FROM events").get()).toEqual({ n: 1 });
    } finally {
      again.close();
    }
  });

  it("applies a later migration forward, and a failing one rolls back entirely", () => {
    openStoreDatabase(path).close();
    const extra = [
      ...storeMigrations,
      { version: 100, name: "add-color", sql: "ALTER TABLE users ADD COLUMN color TEXT NOT NULL DEFAULT ''" },
    ];
    const db = openStoreDatabase(path, { migrations: extra });
    expect(schemaVersion(db)).toBe(100);
    db.close();
    const broken = [
      ...extra,
      { version: 101, name: "half", sql: "CREATE TABLE half_done (x INTEGER); SELECT * FROM no_such_table;" },
    ];
    expect(() => openStoreDatabase(path, { migrations: broken })).toThrow(/no such table/);
    const check = new Database(path);
    try {
      expect(check.prepare("SELECT name FROM sqlite_schema WHERE name = 'half_done'").get()).toBeUndefined();
      expect(check.prepare("SELECT max(version) AS v FROM schema_migrations").get()).toEqual({ v: 100 });
    } finally {
      check.close();
    }
  });

  it("refuses a database with a newer schema than this build knows", () => {
    const extra = [
      ...storeMigrations,
      { version: 999, name: "future", sql: "CREATE TABLE future (x INTEGER)" },
    ];
    openStoreDatabase(path, { migrations: extra }).close();
    expect(() => openStoreDatabase(path)).toThrow(DatabaseRefusedError);
    expect(() => openStoreDatabase(path)).toThrow(/schema version 999 .*newer than this build/);
  });

  it("refuses a file that is not SQLite and leaves it untouched", () => {
    writeFileSync(path, "this is my thesis, please do not overwrite it\n".repeat(10));
    expect(() => openStoreDatabase(path)).toThrow(/not a SQLite file/);
    expect(readFileSync(path, "utf8")).toMatch(/^this is my thesis/);
  });

  it("refuses another application's SQLite database", () => {
    const other = new Database(path);
    other.exec("CREATE TABLE recipes (name TEXT)");
    other.close();
    expect(() => openStoreDatabase(path)).toThrow(/another application/);
  });

  it("refuses a corrupt database", () => {
    const db = openStoreDatabase(path);
    const insert = db.prepare("INSERT INTO events (ts, type, meta) VALUES (?, 'daemon.started', ?)");
    for (let i = 0; i < 2000; i++) insert.run(new Date(i).toISOString(), "x".repeat(200));
    db.pragma("wal_checkpoint(TRUNCATE)");
    db.close();
    // Scribble over pages in the middle of the file (not the header).
    const fd = openSync(path, "r+");
    writeSync(fd, Buffer.alloc(8192, 0xa5), 0, 8192, 4096 * 3);
    closeSync(fd);
    expect(() => openStoreDatabase(path)).toThrow(DatabaseRefusedError);
    expect(() => openStoreDatabase(path)).toThrow(/corrupt|integrity/);
  });
});
