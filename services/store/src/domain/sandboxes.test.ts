import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Store, openStore } from "../store.js";
import { codeOf } from "../testing/connect-code.js";
import { makeTestDir, removeTestDir } from "../testing/store-process.js";

describe("sandbox registry", () => {
  let dir: string;
  let store: Store;
  let alice: string;
  let bob: string;
  beforeEach(async () => {
    dir = makeTestDir("sbx");
    store = await openStore({ stateDir: dir });
    const admin = store.users.ensureFirstAdmin(() => {});
    alice = store.users.create(admin?.id ?? "", {
      name: "alice",
      isAdmin: false,
      limits: { max_sandboxes: 2 },
    }).user.id;
    bob = store.users.create(admin?.id ?? "", { name: "bob", isAdmin: false, limits: {} }).user.id;
  });
  afterEach(() => {
    store.close();
    removeTestDir(dir);
  });

  it("creates with defaults, 16-hex ids and a sandbox.created event", () => {
    const sb = store.sandboxes.create({ userId: alice, labels: { team: "infra" } });
    expect(sb.id).toMatch(/^[0-9a-f]{16}$/);
    expect(sb.name).toMatch(/^sandbox-[0-9a-f]{6}$/);
    expect(sb).toMatchObject({
      cpus: 1,
      memory_mb: 1024,
      image: "minimal",
      status: "creating",
      thermal_state: "hot",
    });
    const ev = store.events.query({ typePrefix: "sandbox.created", sandboxId: sb.id });
    expect(ev.total).toBe(1);
    expect(JSON.parse(ev.events[0]?.meta ?? "{}")).toMatchObject({ name: sb.name, cpus: 1, memory_mb: 1024 });
  });

  it("enforces names, uniqueness per user, quotas and per-sandbox limits", () => {
    store.sandboxes.create({ userId: alice, name: "web" });
    expect(codeOf(() => store.sandboxes.create({ userId: alice, name: "web" }))).toBe(Code.AlreadyExists);
    // The same name is fine for another user.
    expect(store.sandboxes.create({ userId: bob, name: "web" }).user_id).toBe(bob);
    expect(codeOf(() => store.sandboxes.create({ userId: alice, name: "bad/name" }))).toBe(
      Code.InvalidArgument,
    );
    expect(codeOf(() => store.sandboxes.create({ userId: alice, cpus: 5 }))).toBe(Code.InvalidArgument);
    expect(codeOf(() => store.sandboxes.create({ userId: alice, memoryMb: 8192 }))).toBe(
      Code.InvalidArgument,
    );
    expect(codeOf(() => store.sandboxes.create({ userId: alice, labels: { "bhatti.sh/x": "1" } }))).toBe(
      Code.InvalidArgument,
    );
    expect(codeOf(() => store.sandboxes.create({ userId: alice, engineStateJson: "[1]" }))).toBe(
      Code.InvalidArgument,
    );
    store.sandboxes.create({ userId: alice, name: "two" });
    let err: ConnectError | undefined;
    try {
      store.sandboxes.create({ userId: alice, name: "three" });
    } catch (e) {
      err = ConnectError.from(e);
    }
    expect(err?.code).toBe(Code.ResourceExhausted);
    expect(err?.rawMessage).toBe("sandbox limit reached (2/2)");
    // Nothing half-created by the failures.
    expect(store.sandboxes.list({ userId: alice }).map((s) => s.name)).toEqual(["web", "two"]);
  });

  it("scopes every read and write: another user's sandbox is NotFound", () => {
    const mine = store.sandboxes.create({ userId: alice, name: "mine" });
    for (const ref of [mine.id, "mine"]) {
      expect(codeOf(() => store.sandboxes.get({ userId: bob }, ref))).toBe(Code.NotFound);
      expect(codeOf(() => store.sandboxes.update({ userId: bob }, ref, { keepHot: true }))).toBe(
        Code.NotFound,
      );
      expect(codeOf(() => store.sandboxes.delete({ userId: bob }, ref))).toBe(Code.NotFound);
    }
    expect(store.sandboxes.list({ userId: bob })).toEqual([]);
    expect(store.sandboxes.get({ userId: alice }, "mine").id).toBe(mine.id);
    expect(store.sandboxes.get({ anyUser: true }, mine.id).name).toBe("mine");
    expect(store.sandboxes.list({ anyUser: true })).toHaveLength(1);
  });

  it("updates only what is given, with label filters, thermal and stop timestamps", () => {
    const sb = store.sandboxes.create({ userId: alice, name: "a", labels: { env: "dev", team: "x" } });
    store.sandboxes.create({ userId: alice, name: "b", labels: { env: "prod" } });
    expect(store.sandboxes.list({ userId: alice }, { labels: { env: "dev" } }).map((s) => s.name)).toEqual([
      "a",
    ]);
    const renamed = store.sandboxes.update({ userId: alice }, "a", {
      name: "a2",
      labelsAdd: { owner: "me" },
      labelsRemove: ["team"],
      status: "stopped",
    });
    expect(renamed.name).toBe("a2");
    expect(JSON.parse(renamed.labels)).toEqual({ env: "dev", owner: "me" });
    expect(renamed.stopped_at).not.toBeNull();
    expect(codeOf(() => store.sandboxes.update({ userId: alice }, "a2", { name: "b" }))).toBe(
      Code.AlreadyExists,
    );
    const warm = store.sandboxes.update({ anyUser: true }, sb.id, {
      status: "running",
      thermalState: "warm",
    });
    expect(warm.stopped_at).toBeNull();
    expect(warm.thermal_state).toBe("warm");
    expect(warm.thermal_since >= sb.thermal_since).toBe(true);
    expect(codeOf(() => store.sandboxes.update({ anyUser: true }, sb.id, { thermalState: "lukewarm" }))).toBe(
      Code.InvalidArgument,
    );
    expect(store.events.query({ typePrefix: "sandbox.updated", sandboxId: sb.id }).total).toBe(1);
  });

  it("keeps a destroying row destroying: a late status write from a sync cannot revive it", () => {
    const sb = store.sandboxes.create({ userId: alice, name: "dying", status: "running" });
    store.sandboxes.update({ userId: alice }, sb.id, { status: "destroying" });
    const late = store.sandboxes.update({ anyUser: true }, sb.id, {
      status: "running",
      thermalState: "hot",
      ip: "10.0.0.9",
    });
    expect(late.status).toBe("destroying");
    // The other fields still follow the engine.
    expect(late.thermal_state).toBe("hot");
    expect(late.ip).toBe("10.0.0.9");
    expect(store.sandboxes.get({ userId: alice }, sb.id).status).toBe("destroying");
    // A status that is not one is still refused.
    expect(codeOf(() => store.sandboxes.update({ anyUser: true }, sb.id, { status: "zombie" }))).toBe(
      Code.InvalidArgument,
    );
  });

  it("delete removes the row, its address and dependants, and records sandbox.destroyed", () => {
    const sb = store.sandboxes.create({ userId: alice, name: "gone" });
    store.addresses.reserve({
      userId: alice,
      sandboxId: sb.id,
      firstHost: 2,
      lastHost: 254,
      requestedHost: 0,
      maxSubnetIndex: 0,
    });
    store.db
      .prepare(
        "INSERT INTO publish_rules (id, sandbox_id, user_id, port, alias, created_at) VALUES ('pub_1', ?, ?, 80, 'x', 'now')",
      )
      .run(sb.id, alice);
    store.sandboxes.delete({ userId: alice }, "gone");
    expect(codeOf(() => store.sandboxes.get({ userId: alice }, sb.id))).toBe(Code.NotFound);
    expect(store.addresses.list()).toEqual([]);
    expect(store.db.prepare("SELECT count(*) AS n FROM publish_rules").get()).toEqual({ n: 0 });
    expect(store.events.query({ typePrefix: "sandbox.destroyed", sandboxId: sb.id }).total).toBe(1);
    // The name is free again.
    expect(store.sandboxes.create({ userId: alice, name: "gone" }).name).toBe("gone");
  });

  it("requires exactly one of user_id and any_user", async () => {
    const { scopeOf } = await import("./sandboxes.js");
    expect(codeOf(() => scopeOf("", false))).toBe(Code.InvalidArgument);
    expect(codeOf(() => scopeOf("abc", true))).toBe(Code.InvalidArgument);
  });
});
