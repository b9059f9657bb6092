import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gvisorFactory } from "../engine-conformance/gvisor-factory.js";
import {
  type Product,
  type SandboxJson,
  exec,
  startProduct,
  waitForSandbox,
} from "../thermal/product-harness.js";

/**
 * A volume through the thermal service's own cycle (hot → warm → cold by idleness, then a
 * transparent wake by exec): the cold wake restores the checkpoint with the volume's bind in
 * place and its data intact.
 */
describe.skipIf(gvisorFactory.unavailable() !== undefined)(
  "volumes across the thermal cycle (product)",
  () => {
    let product: Product;

    beforeAll(async () => {
      product = await startProduct({
        flags: ["--thermal-warm-after=1000ms", "--thermal-cold-after=2000ms", "--thermal-tick=200ms"],
      });
    }, 180_000);

    afterAll(async () => {
      await product?.dispose();
    }, 180_000);

    it("warm and cold by idleness, woken by exec: the volume's data and mount are there", async () => {
      const vol = await product.http("POST", "/volumes", { body: { name: "thermal", size_mb: 32 } });
      expect(vol.status, vol.text).toBe(201);
      const created = await product.http("POST", "/sandboxes", {
        body: { name: "cycler", image: "busybox", volumes: [{ name: "thermal", mount: "/data" }] },
      });
      expect(created.status, created.text).toBe(201);
      const sb = created.json<SandboxJson>();
      const wrote = await exec(product, sb.id, ["sh", "-c", "echo hot > /data/t && sync"]);
      expect(wrote.body.exit_code).toBe(0);

      await waitForSandbox(product, sb.id, (s) => s.thermal === "cold", 60_000);
      const afterCold = await exec(product, sb.id, [
        "sh",
        "-c",
        "cat /data/t; echo woke >> /data/t; cat /data/t",
      ]);
      expect(afterCold.status).toBe(200);
      expect(afterCold.body.stdout).toBe("hot\nhot\nwoke\n");

      await waitForSandbox(product, sb.id, (s) => s.thermal === "cold", 60_000);
      const again = await exec(product, sb.id, ["cat", "/data/t"]);
      expect(again.body.stdout).toBe("hot\nwoke\n");
      expect((await product.http("DELETE", `/sandboxes/${sb.id}`)).status).toBe(200);
      expect((await product.http("DELETE", "/volumes/thermal")).status).toBe(200);
    });
  },
);
