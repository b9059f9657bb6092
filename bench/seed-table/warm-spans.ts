// Where a warm wake + exec spends its time: REST exec on a warm sandbox, split by doing the
// same steps one at a time on the next warm cycles (ThermalService.Wake directly, then REST
// exec on the now hot sandbox), beside hot REST exec, all in one run.
//
//   node --conditions=source --import tsx bench/seed-table/warm-spans.ts [--n 30]
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { VmmService } from "@bhatti/proto";
import { createServiceClient } from "@bhatti/runtime";
import { exec, startProduct, waitForSandbox } from "@bhatti/test/thermal/product-harness";
import { report } from "../foundation/stats.js";

const i = process.argv.indexOf("--n");
const N = i >= 0 ? Number(process.argv[i + 1]) : 30;
const product = await startProduct({
  flags: ["--log-level=warn", "--thermal-warm-after=300ms", "--thermal-cold-after=1h", "--thermal-tick=50ms"],
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
  const timed = async (fn: () => Promise<unknown>) => {
    const t = performance.now();
    await fn();
    return performance.now() - t;
  };
  const restExec = async (id: string) => {
    const r = await exec(product, id, ["true"]);
    if (r.status !== 200 || r.body.exit_code !== 0)
      throw new Error(`exec: ${r.status} ${JSON.stringify(r.body)}`);
  };
  const hot = await create("spans-hot", true);
  const warm = await create("spans-warm", false);
  for (let k = 0; k < 5; k++) await restExec(hot);
  const hotExec: number[] = [];
  const warmExec: number[] = [];
  const wakeRpc: number[] = [];
  const execAfterWake: number[] = [];
  const vmmResume: number[] = [];
  const vmmEnsureHot: number[] = [];
  const execAfterVmm: number[] = [];
  const toWarm = () => waitForSandbox(product, warm, (s) => s.thermal === "warm", 10_000);
  for (let k = 0; k < N; k++) {
    hotExec.push(await timed(() => restExec(hot)));
    await toWarm();
    warmExec.push(await timed(() => restExec(warm)));
    await toWarm();
    const t0 = performance.now();
    const w = await product.thermal().client.wake({ sandboxId: warm });
    wakeRpc.push(performance.now() - t0);
    vmmResume.push(w.wakeMs);
    execAfterWake.push(await timed(() => restExec(warm)));
    await toWarm();
    vmmEnsureHot.push(await timed(() => vmm.client.ensureHot({ id: warm })));
    execAfterVmm.push(await timed(() => restExec(warm)));
    await sleep(10);
  }
  report(`warm wake spans (REST, gvisor, n=${N})`, "ms", [
    { name: "hot REST exec true (baseline)", samples: hotExec },
    { name: "warm REST exec true (total)", samples: warmExec },
    { name: "  ThermalService.Wake RPC", samples: wakeRpc },
    { name: "    of which vmm resume (wake_ms)", samples: vmmResume },
    { name: "  then REST exec (hot again)", samples: execAfterWake },
    { name: "  VmmService.EnsureHot RPC", samples: vmmEnsureHot },
    { name: "  then REST exec (after vmm)", samples: execAfterVmm },
  ]);
} finally {
  vmm.close();
  await product.dispose();
}
