import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AgeKeyError } from "./adapters/age-cipher.js";
import { openStore } from "./store.js";
import { makeTestDir, removeTestDir } from "./testing/store-process.js";

describe("openStore", () => {
  let dir: string;
  beforeEach(() => {
    dir = makeTestDir("open");
  });
  afterEach(() => removeTestDir(dir));

  it("refuses to replace a lost age key while encrypted secrets exist", async () => {
    const store = await openStore({ stateDir: dir });
    const admin = store.users.ensureFirstAdmin(() => {});
    await store.secrets.set(admin?.id ?? "", "TOKEN", "value");
    store.close();
    const key = readFileSync(join(dir, "age.key"));
    rmSync(join(dir, "age.key"));
    await expect(openStore({ stateDir: dir })).rejects.toBeInstanceOf(AgeKeyError);
    await expect(openStore({ stateDir: dir })).rejects.toThrow(
      /missing but the database holds 1 encrypted secrets/,
    );
    // Nothing was created in its place; with the key back, the secret decrypts.
    expect(() => readFileSync(join(dir, "age.key"))).toThrow();
    writeFileSync(join(dir, "age.key"), key, { mode: 0o600 });
    const again = await openStore({ stateDir: dir });
    try {
      expect(await again.secrets.resolve(admin?.id ?? "", ["TOKEN"])).toEqual({ TOKEN: "value" });
    } finally {
      again.close();
    }
  });

  it("refuses an age key file that holds something else", async () => {
    writeFileSync(join(dir, "age.key"), "not a key\n");
    await expect(openStore({ stateDir: dir })).rejects.toThrow(/does not hold an X25519 identity/);
    expect(readFileSync(join(dir, "age.key"), "utf8")).toBe("not a key\n");
  });
});
