import { create } from "@bufbuild/protobuf";
import { UserSchema } from "@bhatti/proto";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { type ApiKeyLookup, createApiKeyAuthenticator, keyDigest } from "./api-key-authenticator.js";
import { apiKeyFromHeader } from "./bearer-token.js";

const key = (n: number) => `bht_${n.toString(16).padStart(64, "0")}`;
const origin = { remoteAddr: "127.0.0.1", path: "/sandboxes" };

/** A lookup backed by a table, counting how often the "store" is asked. */
function tableLookup(table: Map<string, string>): { lookup: ApiKeyLookup; calls: () => number } {
  let calls = 0;
  return {
    calls: () => calls,
    lookup: async (apiKey) => {
      calls++;
      await new Promise((r) => setTimeout(r, 5));
      const id = table.get(apiKey);
      if (id === undefined) return undefined;
      return {
        user: { id, name: `user-${id}`, isAdmin: false, record: create(UserSchema, { id }) },
        keySha256: "x",
      };
    },
  };
}

describe("API key authenticator", () => {
  it("asks the store once per key while cached, and coalesces concurrent lookups", async () => {
    const { lookup, calls } = tableLookup(new Map([[key(1), "u1"]]));
    const auth = createApiKeyAuthenticator(lookup);
    const users = await Promise.all([1, 2, 3].map(() => auth.authenticate(key(1), origin)));
    expect(users.map((u) => u.id)).toEqual(["u1", "u1", "u1"]);
    expect(calls()).toBe(1);
    await auth.authenticate(key(1), origin);
    expect(calls()).toBe(1);
  });

  it("rejects an unknown key with Unauthenticated, and asks again only after the negative TTL", async () => {
    const { lookup, calls } = tableLookup(new Map());
    let now = 0;
    const auth = createApiKeyAuthenticator(lookup, { negativeTtlMs: 1_000, now: () => now });
    for (let i = 0; i < 3; i++) {
      const err = await auth.authenticate(key(9), origin).catch((e: unknown) => ConnectError.from(e));
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.Unauthenticated);
      expect((err as ConnectError).rawMessage).toBe("invalid api key");
    }
    expect(calls()).toBe(1);
    now += 1_001;
    await expect(auth.authenticate(key(9), origin)).rejects.toThrow("invalid api key");
    expect(calls()).toBe(2);
  });

  it("bounds the negative cache", async () => {
    const { lookup, calls } = tableLookup(new Map());
    const auth = createApiKeyAuthenticator(lookup, { maxEntries: 2 });
    for (const n of [1, 2, 3, 1]) await auth.authenticate(key(n), origin).catch(() => undefined);
    // key(1) was evicted by key(3), so it is asked again.
    expect(calls()).toBe(4);
  });

  it("does not re-cache a key whose lookup was in flight when it was rotated away", async () => {
    const table = new Map([[key(1), "u1"]]);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let calls = 0;
    const auth = createApiKeyAuthenticator(async (apiKey) => {
      calls++;
      const id = table.get(apiKey); // read before the rotation...
      await gate; // ...answered after it
      if (id === undefined) return undefined;
      return { user: { id, name: id, isAdmin: false, record: create(UserSchema, { id }) }, keySha256: "x" };
    });
    const inFlight = auth.authenticate(key(1), origin);
    table.delete(key(1));
    auth.forgetUser("u1");
    // A request after the rotation does not join the old lookup.
    const after = auth.authenticate(key(1), origin).catch((e: unknown) => ConnectError.from(e));
    release();
    expect((await inFlight).id).toBe("u1"); // it started before the rotation
    expect(((await after) as ConnectError).code).toBe(Code.Unauthenticated);
    expect(auth.isKnownValid(key(1))).toBe(false);
    await expect(auth.authenticate(key(1), origin)).rejects.toThrow("invalid api key");
    expect(calls).toBe(2);
  });

  it("forgetKey by digest also stops an in-flight lookup from re-caching", async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const auth = createApiKeyAuthenticator(async () => {
      await gate;
      return {
        user: { id: "u1", name: "u1", isAdmin: false, record: create(UserSchema, { id: "u1" }) },
        keySha256: "x",
      };
    });
    const inFlight = auth.authenticate(key(1), origin);
    auth.forgetKey(keyDigest(key(1)));
    release();
    const user = await inFlight;
    expect(user.keySha256).toBe(keyDigest(key(1)));
    expect(auth.isKnownValid(key(1))).toBe(false);
  });

  it("forgets a user's keys at once and expires entries after the TTL", async () => {
    const table = new Map([[key(1), "u1"]]);
    const { lookup, calls } = tableLookup(table);
    let now = 0;
    const auth = createApiKeyAuthenticator(lookup, { ttlMs: 1_000, now: () => now });
    await auth.authenticate(key(1), origin);
    table.delete(key(1)); // rotated in the store
    await auth.authenticate(key(1), origin); // still cached
    auth.forgetUser("u1");
    await expect(auth.authenticate(key(1), origin)).rejects.toThrow("invalid api key");
    table.set(key(1), "u1");
    now += 5_001; // past the negative TTL of the unknown key
    await auth.authenticate(key(1), origin);
    const before = calls();
    now += 1_001;
    await auth.authenticate(key(1), origin);
    expect(calls()).toBe(before + 1);
  });

  it("does not propagate a store failure as an auth failure", async () => {
    const auth = createApiKeyAuthenticator(async () => {
      throw new ConnectError("store down", Code.Unavailable);
    });
    const err = await auth.authenticate(key(1), origin).catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.Unavailable);
  });
});

describe("Bearer header", () => {
  it("distinguishes a missing header from a malformed key", () => {
    const codeAndMessage = (h: string | undefined) => {
      try {
        apiKeyFromHeader(h);
        return "ok";
      } catch (e) {
        const err = ConnectError.from(e);
        return `${Code[err.code]}: ${err.rawMessage}`;
      }
    };
    expect(codeAndMessage(undefined)).toBe("Unauthenticated: authorization required");
    expect(codeAndMessage("")).toBe("Unauthenticated: authorization required");
    expect(codeAndMessage("Basic abc")).toBe("Unauthenticated: invalid api key");
    expect(codeAndMessage("Bearer bht_123")).toBe("Unauthenticated: invalid api key");
    expect(codeAndMessage(`Bearer ${key(7)}`)).toBe("ok");
    expect(apiKeyFromHeader(`bearer  ${key(7)} `)).toBe(key(7));
  });
});
