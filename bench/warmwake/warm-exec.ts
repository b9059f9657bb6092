// Warm resume + exec via REST against hot REST exec, in one run, with the freeze driven on the
// vmm directly (no thermal tick to wait for): "spares expired" pauses after the agent client's
// spares have idled out (as with the default 30 s warm-after), "spares kept" right after an exec.
//
//   node --conditions=source --import tsx bench/warmwake/warm-exec.ts [--n 20] [--idle-ms 5500]
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { VmmService } from "@bhatti/proto";
import { createServiceClient } from "@bhatti/runtime";
import { exec, startProduct, waitForSandbox } from "@bhatti/test/thermal/product-harness";
import { report } from "../foundation/stats.js";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg("--n", 20);
const IDLE_MS = arg("--idle-ms", 5_500);
const product = await startProduct({
  flags: ["--log-level=warn", "--thermal-warm-after=1h", "--thermal-cold-after=1h", "--thermal-tick=1s"],
});
const vmm = createServiceClient(VmmService, join(product.socketDir, "vmm.sock"));
try {
  const create = async (name: string, keepHot: boolean) => {
    const r = await product.http("POST", "/sandboxes", {
      body: { name, image: "busybox", keep_hot: keepHot },
    });
    if (r.status !== 201) throw new Error(`create: ${r.status} ${r.text}`);
    return r.json<{ id: string }>().id;
  };
  const timedExec = async (id: string) => {
    const t = performance.now();
    const r = await exec(product, id, ["true"]);
    const ms = performance.now() - t;
    if (r.status !== 200 || r.body.exit_code !== 0)
      throw new Error(`exec: ${r.status} ${JSON.stringify(r.body)}`);
    return ms;
  };
  const freeze = async (id: string) => {
    await vmm.client.pauseSandbox({ id });
    await waitForSandbox(product, id, (s) => s.thermal === "warm", 10_000);
  };
  const hot = await create("warm-exec-hot", true);
  const warm = await create("warm-exec-warm", false);
  for (let k = 0; k < 5; k++) {
    await timedExec(hot);
    await timedExec(warm);
  }
  const hotExec: number[] = [];
  const expired: number[] = [];
  const kept: number[] = [];
  for (let k = 0; k < N; k++) {
    await sleep(IDLE_MS);
    await freeze(warm);
    hotExec.push(await timedExec(hot));
    expired.push(await timedExec(warm));
    await freeze(warm);
    hotExec.push(await timedExec(hot));
    kept.push(await timedExec(warm));
  }
  report(
    `warm resume + exec via REST (gvisor, n=${N}, load ${(await import("node:os")).loadavg()[0]?.toFixed(1)})`,
    "ms",
    [
      { name: "hot REST exec true (baseline)", samples: hotExec },
      { name: "warm REST exec, spares expired", samples: expired },
      { name: "warm REST exec, spares kept", samples: kept },
    ],
  );
} finally {
  vmm.close();
  await product.dispose();
}
