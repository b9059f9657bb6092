// Splits a warm wake + exec into its parts, all in one product and one run (the freeze is
// driven on the vmm directly, no thermal tick to wait for):
//   - hot REST exec (a keep-hot sandbox) and warm REST exec (the sandbox frozen just before);
//   - the thaw alone: VmmService.EnsureHot{warm_only} from the bench (round trip) and the vmm's
//     own wake_ms (the thaw inside the handler);
//   - the first agent exec after a thaw vs an exec on the same agent client while hot (direct,
//     no gateway): does a just-thawed guest answer its first command slower?
//   - the same first exec after the thaw has had 100 ms to settle.
//
//   node --conditions=source --import tsx bench/warmpath/warm-trace.ts [--n 30]
import { loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createAgentClient } from "@bhatti/agent-client";
import { VmmService } from "@bhatti/proto";
import { createServiceClient } from "@bhatti/runtime";
import { exec, startProduct, waitForSandbox } from "@bhatti/test/thermal/product-harness";
import { report } from "../foundation/stats.js";

const at = process.argv.indexOf("--n");
const N = at >= 0 ? Number(process.argv[at + 1]) : 30;
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
  const hot = await create("trace-hot", true);
  const warm = await create("trace-warm", false);
  const st = await vmm.client.getSandboxStatus({ id: warm });
  const ag = st.sandbox?.agent;
  if (ag === undefined) throw new Error("no agent endpoint");
  const direct = createAgentClient({
    control: await product.env.options.dialer.endpoint(ag.host, ag.controlPort),
    forward: await product.env.options.dialer.endpoint(ag.host, ag.forwardPort),
    token: ag.token,
    pool: { idleMs: 3_600_000 },
  });
  const directExec = async () => {
    const r = await direct.exec(["true"]);
    if (r.exitCode !== 0) throw new Error(`direct exec: ${r.exitCode}`);
  };
  const freeze = async () => {
    await vmm.client.pauseSandbox({ id: warm });
    await waitForSandbox(product, warm, (x) => x.thermal === "warm", 10_000);
  };
  for (let k = 0; k < 10; k++) {
    await restExec(hot);
    await restExec(warm);
    await directExec();
  }
  const rows = {
    hotRest: [] as number[],
    warmRest: [] as number[],
    ensureHotRpc: [] as number[],
    wakeMs: [] as number[],
    hotDirect: [] as number[],
    firstDirect: [] as number[],
    secondDirect: [] as number[],
    settledDirect: [] as number[],
    restAfterThaw: [] as number[],
    hotRpc: [] as number[],
  };
  const loads: number[] = [];
  for (let k = 0; k < N; k++) {
    loads.push(loadavg()[0] ?? 0);
    await sleep(200);
    rows.hotRest.push(await timed(() => restExec(hot)));
    await freeze();
    await sleep(200);
    rows.warmRest.push(await timed(() => restExec(warm)));
    await sleep(50);
    rows.hotDirect.push(await timed(directExec));
    rows.hotRpc.push(await timed(() => vmm.client.ensureHot({ id: hot, warmOnly: true })));
    await freeze();
    await sleep(200);
    const t0 = performance.now();
    const res = await vmm.client.ensureHot({ id: warm, warmOnly: true });
    rows.ensureHotRpc.push(performance.now() - t0);
    rows.wakeMs.push(res.wakeMs);
    rows.firstDirect.push(await timed(directExec));
    rows.secondDirect.push(await timed(directExec));
    await freeze();
    await sleep(200);
    await vmm.client.ensureHot({ id: warm, warmOnly: true });
    await sleep(100);
    rows.settledDirect.push(await timed(directExec));
    // The gateway learned of the thaw from the feed; this REST exec asks the vmm (hot: no thaw).
    rows.restAfterThaw.push(await timed(() => restExec(warm)));
  }
  const load = loads.reduce((a, b) => a + b, 0) / Math.max(1, loads.length);
  report(`warm wake trace (gvisor, n=${N}, mean load ${load.toFixed(2)})`, "ms", [
    { name: "hot REST exec true", samples: rows.hotRest },
    { name: "warm REST exec true (total)", samples: rows.warmRest },
    { name: "EnsureHot{warm_only} RPC", samples: rows.ensureHotRpc },
    { name: "  of which thaw (wake_ms)", samples: rows.wakeMs },
    { name: "EnsureHot RPC, hot (no thaw)", samples: rows.hotRpc },
    { name: "agent exec, hot", samples: rows.hotDirect },
    { name: "agent exec, 1st after thaw", samples: rows.firstDirect },
    { name: "agent exec, 2nd after thaw", samples: rows.secondDirect },
    { name: "agent exec, 100ms after thaw", samples: rows.settledDirect },
    { name: "REST exec after thaw (vmm hot)", samples: rows.restAfterThaw },
  ]);
  direct.close();
} finally {
  vmm.close();
  await product.dispose();
}
