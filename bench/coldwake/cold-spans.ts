// Cold resume + exec and full snapshot (POST /stop) through the product's REST API, split into
// the vmm's steps (from its thermal.restore / thermal.snapshot event details), interleaved
// sample by sample with a bare `runsc checkpoint` / `runsc restore` of a container whose
// checkpoint has the same size (no bhatti: no agent, overlay, cgroup or network).
//
//   node scripts/build.mjs
//   node --conditions=source --import tsx bench/coldwake/cold-spans.ts [--n 12]
import { readdirSync, rmSync, statSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { VmmService } from "@bhatti/proto";
import { createServiceClient } from "@bhatti/runtime";
import { RUNSC_PATH } from "@bhatti/test/engine-conformance/gvisor-factory";
import { exec, startProduct } from "@bhatti/test/thermal/product-harness";
import { createBareRunsc } from "../seed-table/bare-runsc.js";
import { percentiles } from "../foundation/stats.js";

const i = process.argv.indexOf("--n");
const N = i >= 0 ? Number(process.argv[i + 1]) : 12;
const la = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
const time = async (fn: () => Promise<unknown>) => {
  const t = performance.now();
  await fn();
  return performance.now() - t;
};
process.stdout.write(`# cold spans, ${new Date().toISOString()}, n=${N}, load at start ${la()}\n`);

const product = await startProduct({
  flags: ["--log-level=warn", "--thermal-warm-after=1h", "--thermal-cold-after=2h", "--thermal-tick=10s"],
});
const vmm = createServiceClient(VmmService, join(product.socketDir, "vmm.sock"));
const bare = createBareRunsc(
  RUNSC_PATH,
  join(product.env.stateDir, "images/busybox/rootfs"),
  product.env.options.platform,
);
const details: { kind: string; ms: number; detail: string }[] = [];
const watch = new AbortController();
try {
  const watching = (async () => {
    for await (const ev of vmm.client.watchEvents({}, { signal: watch.signal, timeoutMs: 0 })) {
      if (ev.kind === "thermal.restore" || ev.kind === "thermal.snapshot")
        details.push({ kind: ev.kind, ms: ev.durationMs, detail: ev.detail });
    }
  })().catch(() => undefined);
  await sleep(200);
  const r = await product.http("POST", "/sandboxes", { body: { name: "cold-spans", image: "busybox" } });
  if (r.status !== 201) throw new Error(`create: ${r.status} ${r.text}`);
  const id = r.json<{ id: string }>().id;
  const restExec = async () => {
    const e = await exec(product, id, ["true"]);
    if (e.status !== 200 || e.body.exit_code !== 0)
      throw new Error(`exec: ${e.status} ${JSON.stringify(e.body)}`);
  };
  const stop = async () => {
    const s = await product.http("POST", `/sandboxes/${id}/stop`);
    if (s.status !== 200) throw new Error(`stop: ${s.status} ${s.text}`);
  };
  await restExec();
  // One cycle first, to learn the checkpoint size for the bare container.
  await stop();
  const st = await vmm.client.getSandboxStatus({ id });
  const ckBytes = Number(st.sandbox?.engineDetails["checkpoint_bytes"] ?? 0);
  await restExec();
  await bare.run("cw-bare", Math.max(0, ckBytes - 1_000_000));
  details.length = 0;
  const rows: Record<string, number[]> = {
    "hot REST exec true": [],
    "full snapshot (POST /stop)": [],
    "bare runsc checkpoint": [],
    "cold resume + exec (REST)": [],
    "bare runsc restore": [],
  };
  let bareBytes = 0;
  for (let k = 0; k < N; k++) {
    rows["hot REST exec true"]?.push(await time(restExec));
    rows["full snapshot (POST /stop)"]?.push(await time(stop));
    let img = "";
    rows["bare runsc checkpoint"]?.push(
      await time(async () => {
        img = await bare.checkpoint("cw-bare");
      }),
    );
    bareBytes = readdirSync(img).reduce((sum, f) => sum + statSync(join(img, f)).size, 0);
    await bare.delete("cw-bare");
    rows["cold resume + exec (REST)"]?.push(await time(restExec));
    rows["bare runsc restore"]?.push(await time(() => bare.restore("cw-bare", img)));
    await bare.execTrue("cw-bare");
    rmSync(img, { recursive: true, force: true });
  }
  watch.abort();
  await watching;
  const fmt = (v: number) => v.toFixed(1).padStart(8);
  process.stdout.write(
    `product checkpoint ${(ckBytes / 2 ** 20).toFixed(1)} MiB, bare ${(bareBytes / 2 ** 20).toFixed(1)} MiB\n`,
  );
  process.stdout.write(`${"".padEnd(40)}${"p50".padStart(8)}${"p95".padStart(8)}   n\n`);
  const line = (name: string, s: readonly number[]) => {
    const p = percentiles(s);
    process.stdout.write(`${name.padEnd(40)}${fmt(p.p50)}${fmt(p.p95)}  ${String(p.n).padStart(3)}\n`);
  };
  for (const [name, s] of Object.entries(rows)) line(name, s);
  // The vmm's steps, p50 of each.
  for (const kind of ["thermal.snapshot", "thermal.restore"]) {
    const evs = details.filter((d) => d.kind === kind);
    line(
      `  vmm ${kind} total`,
      evs.map((d) => d.ms),
    );
    const steps = new Map<string, number[]>();
    for (const d of evs)
      for (const m of d.detail.matchAll(/([a-z+]+) ([\d.]+)/g))
        steps.set(m[1] ?? "?", [...(steps.get(m[1] ?? "?") ?? []), Number(m[2])]);
    for (const [step, s] of steps) line(`    ${step}`, s);
  }
  const p = (name: string) => percentiles(rows[name] ?? []).p50;
  process.stdout.write(
    `cold resume + exec / bare restore: ${(p("cold resume + exec (REST)") / p("bare runsc restore")).toFixed(2)}×; ` +
      `snapshot / bare checkpoint: ${(p("full snapshot (POST /stop)") / p("bare runsc checkpoint")).toFixed(2)}×\n`,
  );
  process.stdout.write(`load at end ${la()}\n`);
} finally {
  watch.abort();
  vmm.close();
  await bare.dispose().catch(() => undefined);
  await product.dispose();
}
