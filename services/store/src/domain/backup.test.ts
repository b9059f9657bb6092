import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openStoreDatabase, type SqliteDatabase } from "../adapters/sqlite-database.js";
import { codeOf } from "../testing/connect-code.js";
import { makeTestDir, removeTestDir } from "../testing/store-process.js";
import { backupDatabase, backupTarget } from "./backup.js";
import { type EventLog, createEventLog } from "./events.js";

async function backupCode(p: Promise<unknown>): Promise<Code | undefined> {
  try {
    await p;
  } catch (e) {
    return ConnectError.from(e).code;
  }
  return undefined;
}

describe("backup", () => {
  let dir: string;
  let db: SqliteDatabase;
  let events: EventLog;
  beforeEach(() => {
    dir = makeTestDir("backup");
    db = openStoreDatabase(join(dir, "state.db"));
    events = createEventLog(db);
  });
  afterEach(() => {
    db.close();
    removeTestDir(dir);
  });

  it("resolves a bare name or a path directly in the directory, and nothing else", () => {
    const backups = join(dir, "backups");
    expect(backupTarget(backups, "nightly.db")).toBe(join(backups, "nightly.db"));
    expect(backupTarget(`${backups}/`, join(backups, "a.db"))).toBe(join(backups, "a.db"));
    for (const bad of [
      "",
      ".",
      "..",
      "../x.db",
      "a/b.db",
      join(dir, "x.db"),
      `${backups}/../x.db`,
      "/x.db",
    ]) {
      expect(
        codeOf(() => backupTarget(backups, bad)),
        bad,
      ).toBe(Code.InvalidArgument);
    }
  });

  it("creates the directory 0700 and a 0600 copy that opens as a store, recorded as an event", async () => {
    const backups = join(dir, "backups");
    const res = await backupDatabase(db, events, backups, "one.db");
    expect(res.path).toBe(join(backups, "one.db"));
    expect(statSync(backups).mode & 0o777).toBe(0o700);
    expect(statSync(res.path).mode & 0o777).toBe(0o600);
    openStoreDatabase(res.path).close();
    const recorded = events.query({ typePrefix: "backup." }).events[0];
    expect(JSON.parse(String(recorded?.meta))).toMatchObject({ path: res.path });
  });

  it("refuses a backup directory that is a symlink or writable by others", async () => {
    const real = join(dir, "real");
    mkdirSync(real, { mode: 0o700 });
    symlinkSync(real, join(dir, "linked"));
    expect(await backupCode(backupDatabase(db, events, join(dir, "linked"), "x.db"))).toBe(
      Code.FailedPrecondition,
    );
    expect(existsSync(join(real, "x.db"))).toBe(false);
    const open = join(dir, "open");
    mkdirSync(open);
    chmodSync(open, 0o777);
    expect(await backupCode(backupDatabase(db, events, open, "x.db"))).toBe(Code.FailedPrecondition);
    expect(existsSync(join(open, "x.db"))).toBe(false);
  });

  it("never overwrites or follows what is already there", async () => {
    const backups = join(dir, "backups");
    mkdirSync(backups, { mode: 0o700 });
    writeFileSync(join(backups, "taken.db"), "keep");
    expect(await backupCode(backupDatabase(db, events, backups, "taken.db"))).toBe(Code.AlreadyExists);
    expect(readFileSync(join(backups, "taken.db"), "utf8")).toBe("keep");
    symlinkSync(join(dir, "target"), join(backups, "link.db"));
    expect(await backupCode(backupDatabase(db, events, backups, "link.db"))).toBe(Code.AlreadyExists);
    expect(existsSync(join(dir, "target"))).toBe(false);
  });
});
