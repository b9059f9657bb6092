import { existsSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { parse as parseYaml } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type StoreProcess, removeTestDir, startStoreProcess } from "./testing/store-process.js";

const errorOf = (p: Promise<unknown>): Promise<ConnectError | undefined> =>
  p.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );

const stringify = (v: unknown) =>
  JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x));

describe("store process: secrets and cross-user isolation", () => {
  let store: StoreProcess;
  let adminId: string;
  let alice: string;
  let bob: string;
  const plaintext = `s3cr3t-${Math.random().toString(36).slice(2)}-value`;
  beforeAll(async () => {
    store = await startStoreProcess();
    const key = (parseYaml(readFileSync(store.clientConfigFile, "utf8")) as Record<string, string>)[
      "auth_token"
    ];
    adminId = (await store.client.authenticateApiKey({ apiKey: key ?? "" })).user?.id ?? "";
    alice = (await store.client.createUser({ actingUserId: adminId, name: "alice" })).user?.id ?? "";
    bob = (await store.client.createUser({ actingUserId: adminId, name: "bob" })).user?.id ?? "";
  });
  afterAll(async () => {
    await store?.kill();
    if (store) removeTestDir(store.stateDir);
  });

  it("keeps the age identity private and secret values out of the db, WAL, logs and lists", async () => {
    expect(statSync(join(store.stateDir, "age.key")).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(store.stateDir, "age.key"), "utf8")).toMatch(/^AGE-SECRET-KEY-1/);
    const set = await store.client.setSecret({ userId: alice, name: "API_TOKEN", value: plaintext });
    expect(set.created).toBe(true);
    expect(set.secret?.name).toBe("API_TOKEN");
    const again = await store.client.setSecret({ userId: alice, name: "API_TOKEN", value: `${plaintext}-2` });
    expect(again.created).toBe(false);
    const list = await store.client.listSecrets({ userId: alice });
    expect(list.secrets.map((s) => s.name)).toEqual(["API_TOKEN"]);
    expect(stringify(list)).not.toContain(plaintext);
    const resolved = await store.client.resolveSecrets({ userId: alice, names: ["API_TOKEN"] });
    expect(resolved.values).toEqual({ API_TOKEN: `${plaintext}-2` });
    const events = await store.client.queryEvents({
      actingUserId: adminId,
      filter: { typePrefix: "secret." },
    });
    expect(events.total).toBe(2n);
    expect(stringify(events.events)).not.toContain(plaintext);
    // Every file in the state dir (db, -wal, -shm, ...) and the process output.
    for (const f of readdirSync(store.stateDir)) {
      const p = join(store.stateDir, f);
      if (!statSync(p).isFile()) continue;
      expect(readFileSync(p).includes(plaintext), `plaintext found in ${f}`).toBe(false);
    }
    expect(readdirSync(store.stateDir)).toContain("state.db-wal");
    // Failing calls that carry the value must not echo it either.
    const failed = await errorOf(
      store.client.setSecret({ userId: alice, name: "bad name", value: plaintext }),
    );
    expect(failed?.rawMessage).not.toContain(plaintext);
    expect(store.output()).toContain("serving");
    expect(store.output()).not.toContain(plaintext);
  });

  it("refuses bad secret input clearly", async () => {
    const badName = await errorOf(store.client.setSecret({ userId: alice, name: "no-dashes", value: "x" }));
    expect(badName?.code).toBe(Code.InvalidArgument);
    expect(badName?.rawMessage).toContain("^[A-Za-z_][A-Za-z0-9_]{0,127}$");
    const big = await errorOf(
      store.client.setSecret({ userId: alice, name: "BIG", value: "x".repeat(70_000) }),
    );
    expect(big?.code).toBe(Code.InvalidArgument);
    expect(big?.rawMessage).toMatch(/70000 bytes, more than the 65536 allowed/);
    expect((await errorOf(store.client.setSecret({ userId: alice, name: "EMPTY", value: "" })))?.code).toBe(
      Code.InvalidArgument,
    );
    const missing = await errorOf(
      store.client.resolveSecrets({ userId: alice, names: ["API_TOKEN", "NOPE"] }),
    );
    expect(missing?.code).toBe(Code.NotFound);
    expect(missing?.rawMessage).toBe('secret "NOPE" not found');
    expect((await errorOf(store.client.deleteSecret({ userId: alice, name: "NOPE" })))?.code).toBe(
      Code.NotFound,
    );
  });

  it("makes every resource kind of one user invisible to another", async () => {
    const sb = (await store.client.createSandbox({ userId: bob, name: "bobs-box", labels: { team: "b" } }))
      .sandbox;
    await store.client.setSecret({ userId: bob, name: "BOB_ONLY", value: "bob-value" });
    // Sandboxes: by id, by name, list, label filter, update, delete.
    for (const ref of [sb?.id ?? "", "bobs-box"]) {
      expect((await errorOf(store.client.getSandbox({ userId: alice, sandbox: ref })))?.code).toBe(
        Code.NotFound,
      );
      expect(
        (await errorOf(store.client.updateSandbox({ userId: alice, sandbox: ref, keepHot: true })))?.code,
      ).toBe(Code.NotFound);
      expect((await errorOf(store.client.deleteSandbox({ userId: alice, sandbox: ref })))?.code).toBe(
        Code.NotFound,
      );
    }
    expect((await store.client.listSandboxes({ userId: alice })).sandboxes).toEqual([]);
    expect((await store.client.listSandboxes({ userId: alice, labels: { team: "b" } })).sandboxes).toEqual(
      [],
    );
    // The same name is free for alice: no leak through AlreadyExists either.
    expect((await store.client.createSandbox({ userId: alice, name: "bobs-box" })).sandbox?.userId).toBe(
      alice,
    );
    // Secrets: list, resolve, delete; overwrite creates alice's own.
    expect((await store.client.listSecrets({ userId: alice })).secrets.map((s) => s.name)).not.toContain(
      "BOB_ONLY",
    );
    expect((await errorOf(store.client.resolveSecrets({ userId: alice, names: ["BOB_ONLY"] })))?.code).toBe(
      Code.NotFound,
    );
    expect((await errorOf(store.client.deleteSecret({ userId: alice, name: "BOB_ONLY" })))?.code).toBe(
      Code.NotFound,
    );
    expect((await store.client.setSecret({ userId: alice, name: "BOB_ONLY", value: "alices" })).created).toBe(
      true,
    );
    expect((await store.client.resolveSecrets({ userId: bob, names: ["BOB_ONLY"] })).values).toEqual({
      BOB_ONLY: "bob-value",
    });
    // Users, events, metrics, backup: other users and admin data are out of reach.
    expect((await errorOf(store.client.getUser({ actingUserId: alice, user: "bob" })))?.code).toBe(
      Code.NotFound,
    );
    expect((await errorOf(store.client.getUser({ actingUserId: alice, user: bob })))?.code).toBe(
      Code.NotFound,
    );
    expect((await errorOf(store.client.rotateApiKey({ actingUserId: alice, user: "bob" })))?.code).toBe(
      Code.NotFound,
    );
    expect((await errorOf(store.client.queryEvents({ actingUserId: alice, filter: {} })))?.code).toBe(
      Code.PermissionDenied,
    );
    expect((await errorOf(store.client.getMetrics({ actingUserId: alice })))?.code).toBe(
      Code.PermissionDenied,
    );
    expect(
      (await errorOf(store.client.backup({ actingUserId: alice, path: join(store.stateDir, "x.db") })))?.code,
    ).toBe(Code.PermissionDenied);
  });

  it("records metrics and makes an online backup that opens as a store", async () => {
    const metrics = await store.client.getMetrics({ actingUserId: adminId });
    expect(metrics.current?.usersTotal).toBe(3);
    expect(metrics.current?.sandboxesTotal).toBe(2);
    expect(metrics.current?.sandboxesPerUser).toEqual({ alice: 1, bob: 1 });
    expect(metrics.current?.sandboxesByStatus).toEqual({ creating: 2 });
    expect(metrics.current?.hostMemTotalMb).toBeGreaterThan(0n);
    expect(metrics.current?.hostDiskAvailableMb).toBeGreaterThan(0n);
    const backupDir = join(store.stateDir, "backups");
    const path = join(backupDir, "backup.db");
    const res = await store.client.backup({ actingUserId: adminId, path });
    expect(res.path).toBe(path);
    expect(res.sizeBytes).toBeGreaterThan(0n);
    expect(res.schemaVersion).toBeGreaterThanOrEqual(1);
    // Key hashes and agent tokens: only root may read it, in a 0700 directory.
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(backupDir).mode & 0o777).toBe(0o700);
    expect((await errorOf(store.client.backup({ actingUserId: adminId, path })))?.code).toBe(
      Code.AlreadyExists,
    );
    // A bare file name goes to the backup directory.
    const named = await store.client.backup({ actingUserId: adminId, path: "named.db" });
    expect(named.path).toBe(join(backupDir, "named.db"));
    // Anywhere else on the host is refused, and nothing is written there.
    for (const outside of [
      join(store.stateDir, "x.db"),
      "/etc/bhatti-backup-test.db",
      join(backupDir, "..", "up.db"),
      join(backupDir, "sub", "deeper.db"),
      "sub/rel.db",
      ".hidden.db",
    ]) {
      expect(
        (await errorOf(store.client.backup({ actingUserId: adminId, path: outside })))?.code,
        outside,
      ).toBe(Code.InvalidArgument);
    }
    expect(existsSync(join(store.stateDir, "x.db"))).toBe(false);
    expect(existsSync("/etc/bhatti-backup-test.db")).toBe(false);
    // A symlink planted in the directory is refused, not followed: its target stays untouched.
    const victim = join(store.stateDir, "victim");
    writeFileSync(victim, "untouched");
    symlinkSync(victim, join(backupDir, "planted.db"));
    expect(
      (await errorOf(store.client.backup({ actingUserId: adminId, path: join(backupDir, "planted.db") })))
        ?.code,
    ).toBe(Code.AlreadyExists);
    expect(readFileSync(victim, "utf8")).toBe("untouched");
    // A dangling symlink too (O_EXCL never creates through it).
    symlinkSync(join(store.stateDir, "would-be-created"), join(backupDir, "dangling.db"));
    expect((await errorOf(store.client.backup({ actingUserId: adminId, path: "dangling.db" })))?.code).toBe(
      Code.AlreadyExists,
    );
    expect(existsSync(join(store.stateDir, "would-be-created"))).toBe(false);
    const { openStoreDatabase } = await import("./adapters/sqlite-database.js");
    const copy = openStoreDatabase(path);
    try {
      expect(copy.prepare("SELECT name FROM users ORDER BY name").all()).toEqual([
        { name: "admin" },
        { name: "alice" },
        { name: "bob" },
      ]);
      expect(copy.pragma("integrity_check", { simple: true })).toBe("ok");
    } finally {
      copy.close();
    }
  });
});
