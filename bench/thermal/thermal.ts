import { setTimeout as sleep } from "node:timers/promises";
import { percentiles, report } from "../foundation/stats.js";
import {
  type Product,
  eventsOf,
  exec,
  startProduct,
  waitForSandbox,
} from "@bhatti/test/thermal/product-harness";

/**
 * Thermal benchmarks through the whole product (`bhatti serve`, gvisor, REST), each with
 * SAMPLES samples and, as the baseline measured in the same run, `exec true` on a hot sandbox:
 *   - pause latency: the vmm pause as the thermal service measured it (thermal.pause events);
 *   - warm wake + exec: `exec true` on a sandbox the policy has paused (target p50 <= 5 ms);
 *   - cold wake + exec: `exec true` on a checkpointed sandbox that runs a Node process
 *     (target p50 <= 600 ms).
 * Run as root: node --conditions=source --import tsx bench/thermal/thermal.ts
 */
const SAMPLES = Number(process.env["SAMPLES"] ?? 30);
const WARM_AFTER_MS = 300;

const timeExec = async (product: Product, id: string) => {
  const t0 = performance.now();
  const r = await exec(product, id, ["true"]);
  const ms = performance.now() - t0;
  if (r.status !== 200 || r.body.exit_code !== 0)
    throw new Error(`exec failed: ${r.status} ${JSON.stringify(r.body)}`);
  return ms;
};

const product = await startProduct({
  flags: [`--thermal-warm-after=${WARM_AFTER_MS}ms`, "--thermal-cold-after=1h", "--thermal-tick=50ms"],
});
try {
  const create = async (name: string, extra: Record<string, unknown> = {}) => {
    const res = await product.http("POST", "/sandboxes", { body: { name, image: "busybox", ...extra } });
    if (res.status !== 201) throw new Error(`create ${name}: ${res.status} ${res.text}`);
    return res.json<{ id: string }>().id;
  };
  const hotId = await create("bench-hot", { keep_hot: true });
  const warmId = await create("bench-warm");
  const coldId = await create("bench-cold");
  // A Node process with some heap keeps running in the cold sandbox, as a dev server would.
  const node = await product.http("POST", `/sandboxes/${coldId}/exec`, {
    body: {
      // busybox has no glibc: Node runs through the agent package's loader, like the agent.
      cmd: [
        "/.bhatti/lib/ld-linux-x86-64.so.2",
        "--library-path",
        "/.bhatti/lib",
        "/.bhatti/node",
        "-e",
        "const a = Buffer.alloc(32 << 20, 1); setInterval(() => a[0]++, 1000);",
      ],
      detach: true,
    },
  });
  if (node.status !== 200) throw new Error(`starting node: ${node.status} ${node.text}`);
  await sleep(1_000);

  const hot: number[] = [];
  const warm: number[] = [];
  const cold: number[] = [];
  for (let i = 0; i < 5; i++) await timeExec(product, hotId); // warm-up
  for (let i = 0; i < SAMPLES; i++) {
    hot.push(await timeExec(product, hotId));

    await waitForSandbox(product, warmId, (s) => s.thermal === "warm", 10_000);
    warm.push(await timeExec(product, warmId));

    const stop = await product.http("POST", `/sandboxes/${coldId}/stop`);
    if (stop.status !== 200) throw new Error(`stop: ${stop.status} ${stop.text}`);
    cold.push(await timeExec(product, coldId));
  }
  const pauses = (await eventsOf(product, warmId, "thermal.pause"))
    .map((e) => Number(e.meta["pause_ms"]))
    .filter((v) => Number.isFinite(v));
  const wakes = (await eventsOf(product, coldId, "thermal.wake")).map((e) => Number(e.meta["wake_ms"]));
  const warmWakes = (await eventsOf(product, warmId, "thermal.wake")).map((e) => Number(e.meta["wake_ms"]));

  report(`thermal (gvisor, REST, ${SAMPLES} samples)`, "ms", [
    { name: "hot exec true (baseline)", samples: hot },
    { name: "pause (vmm, thermal.pause)", samples: pauses },
    { name: "warm wake + exec true", samples: warm },
    { name: "warm resume only (wake_ms)", samples: warmWakes },
    { name: "cold wake + exec true (node)", samples: cold },
    { name: "cold restore only (wake_ms)", samples: wakes },
  ]);
  const w = percentiles(warm).p50;
  const c = percentiles(cold).p50;
  process.stdout.write(
    `\ntargets: warm wake + exec p50 ${w.toFixed(1)} ms (<= 5 ms: ${w <= 5 ? "met" : "missed"}); ` +
      `cold wake + exec p50 ${c.toFixed(1)} ms (<= 600 ms: ${c <= 600 ? "met" : "missed"})\n`,
  );
} finally {
  await product.dispose();
}
