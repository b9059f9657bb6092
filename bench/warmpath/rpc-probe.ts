// The floor of one Connect call bench -> vmm (EnsureHot on a hot sandbox: no thaw, no event):
// back to back vs spaced by idle gaps (does an idle host pay a wake-up per call?).
//
//   node --conditions=source --import tsx bench/warmpath/rpc-probe.ts [--n 40]
import { loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { VmmService } from "@bhatti/proto";
import { createServiceClient } from "@bhatti/runtime";
import { startProduct } from "@bhatti/test/thermal/product-harness";
import { report } from "../foundation/stats.js";

const at = process.argv.indexOf("--n");
const N = at >= 0 ? Number(process.argv[at + 1]) : 40;
const product = await startProduct({
  flags: ["--log-level=warn", "--thermal-warm-after=1h", "--thermal-cold-after=1h", "--thermal-tick=1s"],
});
const vmm = createServiceClient(VmmService, join(product.socketDir, "vmm.sock"));
try {
  const r = await product.http("POST", "/sandboxes", {
    body: { name: "probe-hot", image: "busybox", keep_hot: true },
  });
  if (r.status !== 201) throw new Error(`create: ${r.status} ${r.text}`);
  const id = r.json<{ id: string }>().id;
  const call = async () => {
    const t = performance.now();
    await vmm.client.ensureHot({ id, warmOnly: true });
    return performance.now() - t;
  };
  const timed = async (fn: () => Promise<unknown>) => {
    const t = performance.now();
    await fn();
    return performance.now() - t;
  };
  for (let k = 0; k < 20; k++) await call();
  const rows: Record<string, number[]> = { b2b: [], gap1: [], gap20: [], gap200: [], health: [], status: [] };
  const loads: number[] = [];
  for (let k = 0; k < N; k++) {
    loads.push(loadavg()[0] ?? 0);
    rows.health?.push(await timed(() => vmm.client.health({})));
    rows.status?.push(await timed(() => vmm.client.getSandboxStatus({ id })));
    rows.b2b?.push(await call());
    await sleep(1);
    rows.gap1?.push(await call());
    await sleep(20);
    rows.gap20?.push(await call());
    await sleep(200);
    rows.gap200?.push(await call());
  }
  const load = loads.reduce((a, b) => a + b, 0) / Math.max(1, loads.length);
  report(`EnsureHot on a hot sandbox, bench -> vmm (n=${N}, mean load ${load.toFixed(2)})`, "ms", [
    { name: "Health, back to back", samples: rows.health ?? [] },
    { name: "GetSandboxStatus, back to back", samples: rows.status ?? [] },
    { name: "back to back", samples: rows.b2b ?? [] },
    { name: "after 1 ms idle", samples: rows.gap1 ?? [] },
    { name: "after 20 ms idle", samples: rows.gap20 ?? [] },
    { name: "after 200 ms idle", samples: rows.gap200 ?? [] },
  ]);
} finally {
  vmm.close();
  await product.dispose();
}
