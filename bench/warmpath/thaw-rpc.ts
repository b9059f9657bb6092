// The warm wake's Connect call alone, bench -> vmm: EnsureHot{warm_only} on a frozen sandbox
// (round trip and the vmm's wake_ms), beside EnsureHot on a hot sandbox (the call's floor).
// With `--roots a,b` one product per install root, samples alternated, so builds are compared
// under the same load.
//
//   node --conditions=source --import tsx bench/warmpath/thaw-rpc.ts [--n 60] [--roots DIR,DIR]
import { loadavg } from "node:os";
import { basename, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { VmmService } from "@bhatti/proto";
import { type ServiceClient, createServiceClient } from "@bhatti/runtime";
import { type Product, startProduct, waitForSandbox } from "@bhatti/test/thermal/product-harness";
import { report } from "../foundation/stats.js";

const at = process.argv.indexOf("--n");
const N = at >= 0 ? Number(process.argv[at + 1]) : 60;
const rootsAt = process.argv.indexOf("--roots");
const roots = rootsAt >= 0 ? (process.argv[rootsAt + 1] ?? "").split(",") : [""];

interface Subject {
  label: string;
  product: Product;
  vmm: ServiceClient<typeof VmmService>;
  hot: string;
  warm: string;
  thawRpc: number[];
  wakeMs: number[];
  hotRpc: number[];
}
const subjects: Subject[] = [];
try {
  for (const root of roots) {
    const product = await startProduct({
      flags: ["--log-level=warn", "--thermal-warm-after=1h", "--thermal-cold-after=1h", "--thermal-tick=1s"],
      ...(root !== "" ? { serveBundle: join(root, "cli/dist/bhatti.mjs") } : {}),
    });
    const vmm = createServiceClient(VmmService, join(product.socketDir, "vmm.sock"));
    const create = async (name: string, keepHot: boolean) => {
      const r = await product.http("POST", "/sandboxes", {
        body: { name, image: "busybox", keep_hot: keepHot },
      });
      if (r.status !== 201) throw new Error(`create: ${r.status} ${r.text}`);
      return r.json<{ id: string }>().id;
    };
    subjects.push({
      label: root === "" ? "this checkout" : basename(root),
      product,
      vmm,
      hot: await create("thaw-rpc-hot", true),
      warm: await create("thaw-rpc-warm", false),
      thawRpc: [],
      wakeMs: [],
      hotRpc: [],
    });
  }
  const timed = async (fn: () => Promise<unknown>) => {
    const t = performance.now();
    await fn();
    return performance.now() - t;
  };
  const loads: number[] = [];
  for (let k = 0; k < N + 5; k++) {
    loads.push(loadavg()[0] ?? 0);
    const order = k % 2 === 0 ? subjects : [...subjects].reverse();
    for (const s of order) {
      await s.vmm.client.pauseSandbox({ id: s.warm });
      await waitForSandbox(s.product, s.warm, (x) => x.thermal === "warm", 10_000);
    }
    await sleep(50);
    for (const s of order) {
      const hotMs = await timed(() => s.vmm.client.ensureHot({ id: s.hot, warmOnly: true }));
      await sleep(20);
      const t = performance.now();
      const res = await s.vmm.client.ensureHot({ id: s.warm, warmOnly: true });
      const thawMs = performance.now() - t;
      if (k < 5) continue; // warm-up
      s.hotRpc.push(hotMs);
      s.thawRpc.push(thawMs);
      s.wakeMs.push(res.wakeMs);
    }
  }
  const load = loads.reduce((a, b) => a + b, 0) / Math.max(1, loads.length);
  report(
    `EnsureHot bench -> vmm (gvisor, n=${N}, mean load ${load.toFixed(2)})`,
    "ms",
    subjects.flatMap((s) => [
      { name: `${s.label}: EnsureHot, hot`, samples: s.hotRpc },
      { name: `${s.label}: EnsureHot{warm_only}, thaw`, samples: s.thawRpc },
      { name: `${s.label}:   of which wake_ms`, samples: s.wakeMs },
    ]),
  );
} finally {
  for (const s of subjects) {
    s.vmm.close();
    await s.product.dispose();
  }
}
