import { readFileSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { parse as parseYaml } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type StoreProcess, removeTestDir, startStoreProcess } from "./testing/store-process.js";

const codeOf = async (p: Promise<unknown>): Promise<Code | undefined> =>
  p.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e).code,
  );

describe("store process: users and API keys", () => {
  let store: StoreProcess;
  let adminKey: string;
  let adminId: string;
  beforeAll(async () => {
    store = await startStoreProcess();
    const config = parseYaml(readFileSync(store.clientConfigFile, "utf8")) as Record<string, string>;
    adminKey = config["auth_token"] ?? "";
    adminId = (await store.client.authenticateApiKey({ apiKey: adminKey })).user?.id ?? "";
  });
  afterAll(async () => {
    await store?.kill();
    if (store) removeTestDir(store.stateDir);
  });

  it("writes the first admin's key to the client config file, private", async () => {
    expect(statSync(store.clientConfigFile).mode & 0o777).toBe(0o600);
    expect(statSync(dirname(store.clientConfigFile)).mode & 0o777).toBe(0o700);
    const config = parseYaml(readFileSync(store.clientConfigFile, "utf8")) as Record<string, string>;
    expect(config["api_url"]).toBe("http://127.0.0.1:8080");
    expect(config["auth_token"]).toMatch(/^bht_[0-9a-f]{64}$/);
    const me = await store.client.authenticateApiKey({ apiKey: adminKey });
    expect(me.user).toMatchObject({ name: "admin", isAdmin: true });
    expect(me.user?.id).toMatch(/^[0-9a-f]{16}$/);
    expect(me.user?.limits).toMatchObject({
      maxSandboxes: 5,
      maxCpusPerSandbox: 4,
      maxMemoryMbPerSandbox: 4096,
      maxVolumeStorageMb: 20480,
      maxSnapshots: 5,
      maxImages: 10,
      createsPerMinute: 10,
      execsPerMinute: 120,
    });
    // The key itself is not in the database file, only its hash.
    expect(readFileSync(`${store.stateDir}/state.db`).includes(adminKey)).toBe(false);
  });

  it("rejects wrong and malformed keys as Unauthenticated and records auth.failed", async () => {
    const wrong = `bht_${"0".repeat(64)}`;
    expect(await codeOf(store.client.authenticateApiKey({ apiKey: wrong, remoteAddr: "10.9.8.7" }))).toBe(
      Code.Unauthenticated,
    );
    expect(await codeOf(store.client.authenticateApiKey({ apiKey: "Bearer nonsense" }))).toBe(
      Code.Unauthenticated,
    );
    const events = await store.client.queryEvents({
      actingUserId: adminId,
      filter: { typePrefix: "auth.failed" },
    });
    expect(events.total).toBeGreaterThanOrEqual(2n);
    expect(events.events.some((e) => e.metaJson.includes("10.9.8.7"))).toBe(true);
    expect(events.events.every((e) => !e.metaJson.includes("0000000000"))).toBe(true);
  });

  it("creates users (admin only), with limits, unique and valid names", async () => {
    const created = await store.client.createUser({
      actingUserId: adminId,
      name: "alice",
      limits: { maxSandboxes: 2, maxMemoryMbPerSandbox: 2048 },
    });
    expect(created.apiKey).toMatch(/^bht_[0-9a-f]{64}$/);
    expect(created.user).toMatchObject({ name: "alice", isAdmin: false });
    expect(created.user?.limits).toMatchObject({
      maxSandboxes: 2,
      maxMemoryMbPerSandbox: 2048,
      maxCpusPerSandbox: 4,
    });
    const alice = (await store.client.authenticateApiKey({ apiKey: created.apiKey })).user;
    expect(alice?.id).toBe(created.user?.id);

    expect(await codeOf(store.client.createUser({ actingUserId: adminId, name: "alice" }))).toBe(
      Code.AlreadyExists,
    );
    const bad = await store.client
      .createUser({ actingUserId: adminId, name: "-bad name" })
      .catch((e: unknown) => ConnectError.from(e));
    expect(bad).toBeInstanceOf(ConnectError);
    expect((bad as ConnectError).code).toBe(Code.InvalidArgument);
    expect((bad as ConnectError).rawMessage).toContain("^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$");
    expect(
      await codeOf(
        store.client.createUser({ actingUserId: adminId, name: "x", limits: { maxSandboxes: 0 } }),
      ),
    ).toBe(Code.InvalidArgument);
    // A non-admin can neither create nor list users; nor can a made-up id.
    expect(await codeOf(store.client.createUser({ actingUserId: alice?.id ?? "", name: "mallory" }))).toBe(
      Code.PermissionDenied,
    );
    expect(await codeOf(store.client.listUsers({ actingUserId: alice?.id ?? "" }))).toBe(
      Code.PermissionDenied,
    );
    expect(await codeOf(store.client.listUsers({ actingUserId: "0123456789abcdef" }))).toBe(
      Code.PermissionDenied,
    );
    // A non-admin sees itself, and nobody else exists for it.
    expect((await store.client.getUser({ actingUserId: alice?.id ?? "", user: "alice" })).user?.name).toBe(
      "alice",
    );
    expect(await codeOf(store.client.getUser({ actingUserId: alice?.id ?? "", user: "admin" }))).toBe(
      Code.NotFound,
    );
    const listed = await store.client.listUsers({ actingUserId: adminId });
    expect(listed.users.map((u) => u.user?.name)).toEqual(expect.arrayContaining(["admin", "alice"]));
  });

  it("rotation invalidates the old key at once and reports its hash", async () => {
    const bob = await store.client.createUser({ actingUserId: adminId, name: "bob" });
    const rotated = await store.client.rotateApiKey({ actingUserId: adminId, user: "bob" });
    expect(rotated.apiKey).not.toBe(bob.apiKey);
    const { createHash } = await import("node:crypto");
    expect(rotated.revokedKeySha256).toBe(createHash("sha256").update(bob.apiKey).digest("hex"));
    expect(await codeOf(store.client.authenticateApiKey({ apiKey: bob.apiKey }))).toBe(Code.Unauthenticated);
    expect((await store.client.authenticateApiKey({ apiKey: rotated.apiKey })).user?.name).toBe("bob");
    // Deleting works for a user that owns nothing; its key dies with it.
    await store.client.deleteUser({ actingUserId: adminId, user: "bob" });
    expect(await codeOf(store.client.authenticateApiKey({ apiKey: rotated.apiKey }))).toBe(
      Code.Unauthenticated,
    );
  });

  it("does not create a second admin on restart", async () => {
    await store.kill();
    store = await startStoreProcess({ stateDir: store.stateDir });
    const config = parseYaml(readFileSync(store.clientConfigFile, "utf8")) as Record<string, string>;
    expect(config["auth_token"]).toBe(adminKey);
    const users = await store.client.listUsers({ actingUserId: adminId });
    expect(users.users.filter((u) => u.user?.isAdmin)).toHaveLength(1);
  });
});
