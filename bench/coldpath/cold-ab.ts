// Cold resume + exec and full snapshot through the product's REST API, with the vmm's code paths
// switched per sample (A/B in one product): mode "new" is the product as built; each other mode
// creates /tmp/coldpath-legacy-<name> files that a temporary, uncommitted toggle in
// services/vmm/src/engines/gvisor/persist.ts read per call to switch one change off. Without that
// toggle every mode runs the same code (the modes then measure noise). Interleaved with a bare
// `runsc restore` of a checkpoint of the same size.
//
//   node scripts/build.mjs
//   node --conditions=source --import tsx bench/coldpath/cold-ab.ts [--n 10] [--modes new,legacy]
//   (a mode's name: "new", or legacy toggles joined by "+", e.g. "delete+commit")
import { readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { VmmService } from "@bhatti/proto";
import { createServiceClient } from "@bhatti/runtime";
import { RUNSC_PATH } from "@bhatti/test/engine-conformance/gvisor-factory";
import { exec, startProduct } from "@bhatti/test/thermal/product-harness";
import { createBareRunsc } from "../seed-table/bare-runsc.js";
import { percentiles } from "../foundation/stats.js";

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const N = Number(arg("--n") ?? 10);
const MODES = (arg("--modes") ?? "new,delete+commit").split(",");
const TOGGLES = ["delete", "commit", "rm"];
const setMode = (mode: string) => {
  const on = mode === "new" ? [] : mode.split("+");
  for (const t of TOGGLES) {
    const f = `/tmp/coldpath-legacy-${t}`;
    if (on.includes(t)) writeFileSync(f, "");
    else rmSync(f, { force: true });
  }
};
const la = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
const time = async (fn: () => Promise<unknown>) => {
  const t = performance.now();
  await fn();
  return performance.now() - t;
};
process.stdout.write(
  `# cold A/B, ${new Date().toISOString()}, n=${N} per mode, modes ${MODES}, load ${la()}\n`,
);

const product = await startProduct({
  flags: ["--log-level=warn", "--thermal-warm-after=1h", "--thermal-cold-after=2h", "--thermal-tick=10s"],
});
const vmm = createServiceClient(VmmService, join(product.socketDir, "vmm.sock"));
const bare = createBareRunsc(
  RUNSC_PATH,
  join(product.env.stateDir, "images/busybox/rootfs"),
  product.env.options.platform,
);
const events: { kind: string; ms: number; detail: string }[] = [];
const watch = new AbortController();
try {
  const watching = (async () => {
    for await (const ev of vmm.client.watchEvents({}, { signal: watch.signal, timeoutMs: 0 })) {
      if (ev.kind === "thermal.restore" || ev.kind === "thermal.snapshot")
        events.push({ kind: ev.kind, ms: ev.durationMs, detail: ev.detail });
    }
  })().catch(() => undefined);
  await sleep(200);
  const r = await product.http("POST", "/sandboxes", { body: { name: "cold-ab", image: "busybox" } });
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
  const eventCount = async (n: number) => {
    const until = Date.now() + 10_000;
    while (events.length < n && Date.now() < until) await sleep(5);
    if (events.length < n) throw new Error("thermal event did not arrive");
  };
  await restExec();
  await stop();
  const st = await vmm.client.getSandboxStatus({ id });
  const ckBytes = Number(st.sandbox?.engineDetails["checkpoint_bytes"] ?? 0);
  await restExec();
  await bare.run("ab-bare", Math.max(0, ckBytes - 1_000_000));
  await eventCount(2);
  events.length = 0;
  const rows = new Map<string, number[]>();
  const push = (k: string, v: number) => rows.set(k, [...(rows.get(k) ?? []), v]);
  let bareBytes = 0;
  for (let k = 0; k < N; k++) {
    for (const mode of MODES) {
      setMode(mode);
      push(`${mode}: full snapshot (POST /stop)`, await time(stop));
      await eventCount(1);
      push(`${mode}: cold resume + exec (REST)`, await time(restExec));
      await eventCount(2);
      for (const ev of events) {
        push(`${mode}:   ${ev.kind} total`, ev.ms);
        for (const m of ev.detail.matchAll(/([a-z+]+) ([\d.]+)/g))
          push(`${mode}:     ${ev.kind.slice(8)} ${m[1]}`, Number(m[2]));
      }
      events.length = 0;
      push(`${mode}: hot REST exec true`, await time(restExec));
    }
    setMode("new");
    const img = await bare.checkpoint("ab-bare");
    bareBytes = readdirSync(img).reduce((sum, f) => sum + statSync(join(img, f)).size, 0);
    await bare.delete("ab-bare");
    push("bare runsc restore", await time(() => bare.restore("ab-bare", img)));
    await bare.execTrue("ab-bare");
    rmSync(img, { recursive: true, force: true });
  }
  watch.abort();
  await watching;
  const fmt = (v: number) => v.toFixed(1).padStart(8);
  process.stdout.write(
    `product checkpoint ${(ckBytes / 2 ** 20).toFixed(1)} MiB, bare ${(bareBytes / 2 ** 20).toFixed(1)} MiB\n`,
  );
  process.stdout.write(`${"".padEnd(48)}${"p50".padStart(8)}${"p95".padStart(8)}   n\n`);
  for (const [name, s] of [...rows].sort(([a], [b]) =>
    (a.split(":")[0] ?? "").localeCompare(b.split(":")[0] ?? ""),
  )) {
    const p = percentiles(s);
    process.stdout.write(`${name.padEnd(48)}${fmt(p.p50)}${fmt(p.p95)}  ${String(p.n).padStart(3)}\n`);
  }
  const bareP50 = percentiles(rows.get("bare runsc restore") ?? []).p50;
  for (const mode of MODES)
    process.stdout.write(
      `${mode}: cold resume + exec / bare restore ${(percentiles(rows.get(`${mode}: cold resume + exec (REST)`) ?? []).p50 / bareP50).toFixed(2)}x\n`,
    );
  process.stdout.write(`load at end ${la()}\n`);
} finally {
  setMode("new");
  watch.abort();
  vmm.close();
  await bare.dispose().catch(() => undefined);
  await product.dispose();
}
