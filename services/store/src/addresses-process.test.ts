import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  type StoreProcess,
  makeTestDir,
  removeTestDir,
  runStoreExpectingFailure,
  startStoreProcess,
} from "./testing/store-process.js";

describe("store process: network addressing over the socket", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  const start = async (stateDir?: string): Promise<StoreProcess> => {
    const p = await startStoreProcess(stateDir === undefined ? {} : { stateDir });
    cleanups.push(() => p.kill());
    if (stateDir === undefined) cleanups.unshift(() => removeTestDir(p.stateDir));
    return p;
  };

  it("hands out distinct hosts to 120 concurrent reservations and keeps them across a restart", async () => {
    const store = await start();
    const reservations = await Promise.all(
      Array.from({ length: 120 }, (_, i) =>
        store.client.reserveAddress({
          userId: i % 2 === 0 ? "user-even" : "user-odd",
          sandboxId: `sb${i}`,
          firstHost: 2,
          lastHost: 254,
          maxSubnetIndex: 1000,
        }),
      ),
    );
    const keys = reservations.map((r) => `${r.address?.subnetIndex}/${r.address?.host}`);
    expect(new Set(keys).size).toBe(120);
    const subnets = new Set(reservations.map((r) => r.address?.subnetIndex));
    expect([...subnets].sort()).toEqual([1, 2]);
    await store.kill();
    const again = await start(store.stateDir);
    const listed = await again.client.listAddresses({});
    expect(listed.addresses).toHaveLength(120);
    expect((await again.client.assignSubnet({ userId: "user-even", maxIndex: 10 })).subnetIndex).toBe(
      reservations[0]?.address?.subnetIndex,
    );
    expect((await again.client.releaseAddress({ sandboxId: "sb0" })).released).toBe(true);
  });

  it("refuses to start on a foreign file, saying why, and leaves it alone", async () => {
    const dir = makeTestDir("foreign");
    cleanups.push(() => removeTestDir(dir));
    writeFileSync(join(dir, "state.db"), "not a database at all, but important to someone\n".repeat(5));
    const { code, output } = await runStoreExpectingFailure(dir);
    expect(code).toBe(1);
    expect(output).toMatch(/not a SQLite file/);
  });
});
