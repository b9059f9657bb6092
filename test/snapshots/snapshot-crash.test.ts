// The vmm SIGKILLed at each step of a snapshot create (crash points, once each): the sandbox
// ends running with the same processes, no snapshot row exists, and no partial snapshot is
// left on disk once the restarted vmm has swept. The gateway SIGKILLed after the vmm wrote the
// files (before the row): the files are reaped once older than vmm_orphan_grace. Then a snapshot
// of the same sandbox works.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Product, exec, startProduct } from "../thermal/product-harness.js";
import { readTicker, snapshotDirs, startTicker, waitUntil } from "./snapshot-helpers.js";

const POINTS = ["vmm.snapshot.after-checkpoint", "vmm.snapshot.after-copy", "vmm.snapshot.before-commit"];
const GATEWAY_POINT = "gateway.snapshot.after-vmm-create";

describe("SIGKILL of the vmm during snapshot create", () => {
  let product: Product;
  let onceDir: string;

  beforeAll(async () => {
    onceDir = mkdtempSync(join(tmpdir(), "bhatti-test-snapcrash-"));
    product = await startProduct({
      // The grace must exceed a create under load (it also settles `creating` rows).
      flags: ["--thermal-warm-after=30m", "--thermal-cold-after=60m", "--vmm-orphan-grace=30s"],
      env: {
        BHATTI_CRASH_AT: [...POINTS, GATEWAY_POINT].join(","),
        BHATTI_CRASH_ONCE_DIR: onceDir,
      },
    });
  }, 240_000);

  afterAll(async () => {
    try {
      await product?.dispose();
    } finally {
      rmSync(onceDir, { recursive: true, force: true });
    }
  }, 240_000);

  it("leaves the sandbox running and no partial snapshot, at every step", { timeout: 600_000 }, async () => {
    const created = await product.http("POST", "/sandboxes", { body: { name: "victim", image: "busybox" } });
    expect(created.status, created.text).toBe(201);
    const id = created.json<{ id: string }>().id;
    const ticker = await startTicker(product, id);

    for (const point of POINTS) {
      const vmmPid = product.childPid("services/vmm/dist");
      const res = await product.http("POST", `/sandboxes/${id}/checkpoint`, { body: { name: "snap" } });
      expect(res.status, `${point}: ${res.text}`).toBe(503);
      // The vmm's last line reaches serve's relay after the gateway answered: wait for it.
      await waitUntil(
        `the vmm logged ${point}`,
        async () => product.output().includes(`crash point ${point}: SIGKILL`),
        (seen) => seen,
      );
      // The supervisor restarts the vmm, which adopts the sandbox (warm if it was paused) and
      // sweeps the unfinished snapshot; the next exec wakes it.
      await waitUntil(
        "the vmm is back",
        async () => product.childPid("services/vmm/dist"),
        (pid) => pid !== undefined && pid !== vmmPid,
      );
      await waitUntil(
        "exec works again",
        async () => (await exec(product, id, ["true"])).status,
        (s) => s === 200,
      );
      expect(await readTicker(product, id), point).toEqual(ticker);
      expect((await product.http("GET", "/snapshots")).json<unknown[]>()).toEqual([]);
      expect(snapshotDirs(product), point).toEqual([]);
    }

    // The gateway dies after the vmm wrote a complete snapshot, before its row: nobody can see
    // the files, and the vmm removes them once they are older than the grace.
    const gatewayPid = product.childPid("gateway/dist");
    await expect(
      product.http("POST", `/sandboxes/${id}/checkpoint`, { body: { name: "snap" } }),
    ).rejects.toThrow();
    await waitUntil(
      `the gateway logged ${GATEWAY_POINT}`,
      async () => product.output().includes(`crash point ${GATEWAY_POINT}: SIGKILL`),
      (seen) => seen,
    );
    expect(snapshotDirs(product)).toHaveLength(1);
    await waitUntil(
      "the gateway is back",
      async () => (await product.http("GET", "/snapshots")).status,
      (s) => s === 200 && product.childPid("gateway/dist") !== gatewayPid,
    );
    expect((await product.http("GET", "/snapshots")).json<unknown[]>()).toEqual([]);
    await waitUntil(
      "the orphan is reaped",
      async () => snapshotDirs(product),
      (d) => d.length === 0,
      120_000,
    );
    expect(await readTicker(product, id)).toEqual(ticker);

    const ok = await product.http("POST", `/sandboxes/${id}/checkpoint`, { body: { name: "snap" } });
    expect(ok.status, ok.text).toBe(201);
    expect(snapshotDirs(product)).toHaveLength(1);
    expect(await readTicker(product, id)).toEqual(ticker);
  });
});
