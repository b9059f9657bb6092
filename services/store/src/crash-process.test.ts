import { readFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { parse as parseYaml } from "yaml";
import { afterEach, describe, expect, it } from "vitest";
import { type StoreProcess, removeTestDir, startStoreProcess } from "./testing/store-process.js";

describe("store process: crash safety", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it("loses nothing acknowledged when SIGKILLed in the middle of a burst of concurrent writes", async () => {
    let store: StoreProcess = await startStoreProcess();
    const stateDir = store.stateDir;
    cleanups.push(() => removeTestDir(stateDir));
    cleanups.push(() => store.kill());
    const key = (parseYaml(readFileSync(store.clientConfigFile, "utf8")) as Record<string, string>)[
      "auth_token"
    ];
    const adminId = (await store.client.authenticateApiKey({ apiKey: key ?? "" })).user?.id ?? "";
    const user = (
      await store.client.createUser({
        actingUserId: adminId,
        name: "writer",
        limits: { maxSandboxes: 10_000 },
      })
    ).user?.id as string;

    const ackedEvents: bigint[] = [];
    const ackedSandboxes: string[] = [];
    const ackedSecrets: string[] = [];
    let attempted = 0;
    let stop = false;
    // 24 concurrent writers, each looping until the process dies under them.
    const writer = async (w: number) => {
      for (let i = 0; !stop; i++) {
        attempted++;
        try {
          switch (i % 3) {
            case 0: {
              const res = await store.client.appendEvents({
                events: [{ type: "sandbox.updated", userId: user, metaJson: JSON.stringify({ w, i }) }],
              });
              ackedEvents.push(...res.ids);
              break;
            }
            case 1: {
              const name = `w${w}-${i}`;
              await store.client.createSandbox({ userId: user, name });
              ackedSandboxes.push(name);
              break;
            }
            default: {
              const name = `S_${w}_${i}`;
              await store.client.setSecret({ userId: user, name, value: `v-${w}-${i}` });
              ackedSecrets.push(name);
            }
          }
        } catch {
          return; // the process is gone
        }
      }
    };
    const writers = Array.from({ length: 24 }, (_, w) => writer(w));
    // Kill once a good number of writes are acknowledged, with many still in flight.
    while (ackedEvents.length + ackedSandboxes.length + ackedSecrets.length < 400) {
      await new Promise((ok) => setTimeout(ok, 5));
    }
    await store.kill();
    stop = true;
    await Promise.all(writers);
    expect(attempted).toBeGreaterThan(ackedEvents.length + ackedSandboxes.length + ackedSecrets.length);

    store = await startStoreProcess({ stateDir });
    const db = new Database(join(stateDir, "state.db"), { readonly: true });
    try {
      expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
      expect(db.pragma("foreign_key_check")).toEqual([]);
      const eventIds = new Set(
        (db.prepare("SELECT id FROM events WHERE type = 'sandbox.updated'").all() as { id: number }[]).map(
          (r) => BigInt(r.id),
        ),
      );
      expect(ackedEvents.filter((id) => !eventIds.has(id))).toEqual([]);
      const names = new Set(
        (db.prepare("SELECT name FROM sandboxes WHERE user_id = ?").all(user) as { name: string }[]).map(
          (r) => r.name,
        ),
      );
      expect(ackedSandboxes.filter((n) => !names.has(n))).toEqual([]);
    } finally {
      db.close();
    }
    // Secrets survive and still decrypt to the value that was acknowledged.
    const values = await store.client.resolveSecrets({ userId: user, names: ackedSecrets });
    for (const name of ackedSecrets) {
      const [, w, i] = name.split("_");
      expect(values.values[name]).toBe(`v-${w}-${i}`);
    }
  });
});
