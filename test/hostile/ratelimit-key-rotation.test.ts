import { readFileSync } from "node:fs";
import { Code, ConnectError } from "@connectrpc/connect";
import { parse as parseYaml } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ApiKeyLookup,
  type ServiceClients,
  createApiKeyAuthenticator,
  createStoreApiKeyLookup,
  keyDigest,
} from "@bhatti/gateway";
import { type StoreProcess, removeTestDir, startStoreProcess } from "@bhatti/service-store/testing";

const origin = { remoteAddr: "127.0.0.1", path: "/sandboxes" };

/**
 * The gateway's key cache against the real store over its socket: a lookup that the store
 * answered before a rotation, but that completes after the gateway forgot the key, must not
 * put the old key back in the cache.
 */
describe("key cache and rotation (real store process)", () => {
  let store: StoreProcess;
  let adminId: string;

  beforeAll(async () => {
    store = await startStoreProcess();
    const config = parseYaml(readFileSync(store.clientConfigFile, "utf8")) as Record<string, string>;
    adminId = (await store.client.authenticateApiKey({ apiKey: config["auth_token"] ?? "" })).user?.id ?? "";
  });
  afterAll(async () => {
    await store?.kill();
    if (store) removeTestDir(store.stateDir);
  });

  it("an in-flight lookup during rotation cannot re-cache the old key", async () => {
    const created = await store.client.createUser({ actingUserId: adminId, name: "carol" });
    const oldKey = created.apiKey;
    const carolId = created.user?.id ?? "";
    const storeLookup = createStoreApiKeyLookup({ store: store.client } as unknown as ServiceClients);
    // The store answers at once; the answer reaches the cache only when the gate opens.
    let openGate: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      openGate = r;
    });
    let held = 0;
    const lookup: ApiKeyLookup = async (apiKey, o) => {
      const answer = await storeLookup(apiKey, o);
      if (apiKey === oldKey && held++ === 0) await gate;
      return answer;
    };
    const auth = createApiKeyAuthenticator(lookup);

    const inFlight = auth.authenticate(oldKey, origin);
    // Wait until the store has answered the first lookup (it is then held at the gate).
    for (let i = 0; i < 200 && held === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(held).toBe(1);

    const rotated = await store.client.rotateApiKey({ actingUserId: adminId, user: "carol" });
    expect(rotated.revokedKeySha256).toBe(keyDigest(oldKey));
    // What the gateway's rotate handlers do.
    auth.forgetKey(rotated.revokedKeySha256);
    auth.forgetUser(carolId);
    openGate();

    expect((await inFlight).id).toBe(carolId); // it was valid when it was asked
    expect(auth.isKnownValid(oldKey)).toBe(false);
    const err = await auth.authenticate(oldKey, origin).catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.Unauthenticated);
    expect((await auth.authenticate(rotated.apiKey, origin)).id).toBe(carolId);
    expect(auth.isKnownValid(rotated.apiKey)).toBe(true);
  });
});
