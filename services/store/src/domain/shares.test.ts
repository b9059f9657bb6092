import { Code } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Store, openStore } from "../store.js";
import { codeOf } from "../testing/connect-code.js";
import { makeTestDir, removeTestDir } from "../testing/store-process.js";

describe("share registry", () => {
  let dir: string;
  let store: Store;
  let alice: string;
  let bob: string;
  const future = () => new Date(Date.now() + 3_600_000).toISOString();
  const id = (n: number) => `shr_${n.toString(16).padStart(24, "0")}`;

  beforeEach(async () => {
    dir = makeTestDir("shares");
    store = await openStore({ stateDir: dir });
    const admin = store.users.ensureFirstAdmin(() => {});
    alice = store.users.create(admin?.id ?? "", { name: "alice", isAdmin: false, limits: {} }).user.id;
    bob = store.users.create(admin?.id ?? "", { name: "bob", isAdmin: false, limits: {} }).user.id;
    store.sandboxes.create({ userId: alice, name: "dev" });
  });
  afterEach(() => {
    store.close();
    removeTestDir(dir);
  });

  const record = (n: number, expiresAt = future()) =>
    store.shares.record({
      id: id(n),
      userId: alice,
      sandboxRef: "dev",
      sessionId: "s1",
      readOnly: n % 2 === 0,
      expiresAt,
    });

  it("records, lists live shares newest first, and revokes one or all; revoked shares stay readable", () => {
    record(1);
    record(2);
    record(3, new Date(Date.now() - 1000).toISOString());
    expect(
      store.shares
        .list(alice, "dev")
        .map((s) => s.id)
        .sort(),
    ).toEqual([id(1), id(2)]);
    expect(store.shares.revoke(alice, "dev", id(1))).toEqual([id(1)]);
    // Revoking again is not an error, and revokes nothing.
    expect(store.shares.revoke(alice, "dev", id(1))).toEqual([]);
    expect(store.shares.get(id(1)).revoked_at).not.toBeNull();
    expect(store.shares.list(alice, "dev").map((s) => s.id)).toEqual([id(2)]);
    // "All" revokes what is not yet revoked, expired ones included (their rows are then marked too).
    expect(store.shares.revoke(alice, "dev", undefined).sort()).toEqual([id(2), id(3)]);
    expect(store.shares.list(alice, "dev")).toEqual([]);
  });

  it("keeps users apart and refuses malformed input", () => {
    record(1);
    expect(codeOf(() => store.shares.list(bob, "dev"))).toBe(Code.NotFound);
    expect(codeOf(() => store.shares.revoke(bob, "dev", id(1)))).toBe(Code.NotFound);
    expect(
      codeOf(() =>
        store.shares.record({
          id: id(9),
          userId: bob,
          sandboxRef: "dev",
          sessionId: "s1",
          readOnly: false,
          expiresAt: future(),
        }),
      ),
    ).toBe(Code.NotFound);
    expect(codeOf(() => store.shares.revoke(alice, "dev", id(8)))).toBe(Code.NotFound);
    expect(
      codeOf(() =>
        store.shares.record({
          id: "x",
          userId: alice,
          sandboxRef: "dev",
          sessionId: "s1",
          readOnly: false,
          expiresAt: future(),
        }),
      ),
    ).toBe(Code.InvalidArgument);
    expect(
      codeOf(() =>
        store.shares.record({
          id: id(5),
          userId: alice,
          sandboxRef: "dev",
          sessionId: "",
          readOnly: false,
          expiresAt: future(),
        }),
      ),
    ).toBe(Code.InvalidArgument);
    expect(codeOf(() => store.shares.get(id(7)))).toBe(Code.NotFound);
  });
});
