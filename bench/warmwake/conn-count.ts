// Do agent connections pile up across checkpoint/restore cycles? Counts ESTABLISHED TCP
// connections on the agent's control port (1024) inside the sandbox after each cycle.
import { join } from "node:path";
import { VmmService } from "@bhatti/proto";
import { createServiceClient } from "@bhatti/runtime";
import { exec, startProduct } from "@bhatti/test/thermal/product-harness";

const rootAt = process.argv.indexOf("--root");
const root = rootAt >= 0 ? process.argv[rootAt + 1] : undefined;
const product = await startProduct({
  flags: ["--log-level=warn", "--thermal-warm-after=1h", "--thermal-cold-after=1h"],
  ...(root !== undefined ? { serveBundle: join(root, "cli/dist/bhatti.mjs") } : {}),
});
const vmm = createServiceClient(VmmService, join(product.socketDir, "vmm.sock"));
try {
  const r = await product.http("POST", "/sandboxes", { body: { name: "conns", image: "busybox" } });
  const id = r.json<{ id: string }>().id;
  const count = async () => {
    const res = await exec(product, id, ["cat", "/proc/net/tcp"]);
    return res.body.stdout
      .split("\n")
      .filter((l) => /^\s*\d+: [0-9A-F]+:0400 [0-9A-F]+:[0-9A-F]+ 01 /.test(l)).length;
  };
  console.log((await exec(product, id, ["cat", "/proc/net/tcp"])).body.stdout);
  console.log("before", await count(), await count());
  for (let k = 0; k < 4; k++) {
    await exec(product, id, ["true"]);
    await vmm.client.pauseSandbox({ id });
    await vmm.client.stopSandbox({ id });
    await vmm.client.startSandbox({ id });
    console.log(`after cycle ${k + 1}:`, await count(), await count());
  }
} finally {
  vmm.close();
  await product.dispose();
}
