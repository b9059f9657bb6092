import { existsSync, readdirSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type Product, exec, startProduct } from "@bhatti/test/thermal/product-harness";
import { report } from "../foundation/stats.js";

/**
 * Create + first exec of a template sandbox (BOOT=1: a booted one), split into spans end to
 * end, SAMPLES samples:
 *   client:  POST /sandboxes (gateway → store row → vmm create → store update → reply), first exec;
 *   vmm:     the template create's steps from its "sandbox created" line (disk copy, mount,
 *            network, bundle and cgroup, runsc restore, claim round trip) and its total;
 *   derived: gateway + store + RPC = POST − vmm total.
 * BASE=<root of an earlier build> runs that build's `bhatti serve` beside this tree's and
 * alternates the samples; the "paired" rows are each sample's new minus the base sample next to it.
 * Run as root, without nice: [BASE=/tmp/bhatti-base] [BOOT=1] SAMPLES=20 node --conditions=source
 *   --import tsx bench/createpath/spans.ts
 */
const SAMPLES = Number(process.env["SAMPLES"] ?? 10);
// BOOT=1: creates of a shape no template has (memory_mb 1000), so the vmm boots the image.
const BOOT = process.env["BOOT"] === "1";

async function waitForTemplate(product: Product): Promise<void> {
  const root = join(product.env.stateDir, "templates", "busybox");
  for (let i = 0; i < 1800; i++) {
    if (existsSync(root) && readdirSync(root).some((e) => existsSync(join(root, e, "manifest.json")))) return;
    await sleep(100);
  }
  throw new Error(`no busybox template: ${product.output().slice(-2000)}`);
}

function num(re: RegExp, s: string): number {
  const m = re.exec(s);
  return m ? Number(m[1]) : Number.NaN;
}

const flags = ["--thermal-warm-after=1h", "--thermal-cold-after=2h", "--create-template-images=busybox"];
// BASE=<root of an earlier build>: its `bhatti serve` runs beside this tree's, samples alternate.
const base = process.env["BASE"];
const products: { label: string; product: Product }[] = [];
try {
  products.push({ label: base === undefined ? "" : "new: ", product: await startProduct({ flags }) });
  if (base !== undefined)
    products.push({
      label: "base: ",
      product: await startProduct({ flags, serveBundle: join(base, "cli/dist/bhatti.mjs") }),
    });
  for (const { product } of products) await waitForTemplate(product);
  const rows: Record<string, number[]> = {};
  const add = (k: string, v: number) => {
    rows[k] ??= [];
    rows[k].push(v);
  };
  for (let i = 0; i < SAMPLES; i++) {
    for (const { label, product } of products) {
      const t0 = performance.now();
      const res = await product.http("POST", "/sandboxes", {
        body: { name: `span-${i}`, image: "busybox", ...(BOOT ? { memory_mb: 1000 } : {}) },
      });
      const t1 = performance.now();
      if (res.status !== 201) throw new Error(`create: ${res.status} ${res.text}`);
      const id = res.json<{ id: string }>().id;
      const r = await exec(product, id, ["true"]);
      const t2 = performance.now();
      if (r.status !== 200 || r.body.exit_code !== 0)
        throw new Error(`exec: ${r.status} ${JSON.stringify(r.body)}`);
      const again = performance.now();
      await exec(product, id, ["true"]);
      const t3 = performance.now();
      await sleep(50);
      const line = product
        .output()
        .split("\n")
        .find((l) => l.includes('"sandbox created"') && l.includes(id));
      const kind = BOOT ? '"boot"' : '"template"';
      if (line === undefined || !line.includes(kind)) throw new Error(`not a ${kind} create: ${line}`);
      const row = (k: string, v: number) => add(label + k, v);
      row("create + first exec", t2 - t0);
      row("POST /sandboxes", t1 - t0);
      row("first exec (REST)", t2 - t1);
      row("second exec (REST)", t3 - again);
      const prepare = num(/prepare (\d+) ms/, line);
      row("vmm: prepare (all)", prepare);
      if (BOOT) {
        row("vmm: prepare → runsc run returned", prepare + num(/runsc run (\d+) ms/, line));
        row("vmm: agent ready", num(/agent ready (\d+) ms/, line));
      } else {
        const bundle = num(/bundle and cgroup (\d+) ms/, line);
        const restore = num(/runsc restore (\d+) ms/, line);
        row("vmm: prepare → restored", prepare + restore);
        row("vmm: claim round trip", num(/claim (\d+) ms/, line));
        if (label !== "base: ") {
          const vmm = num(/"ms":(\d+)/, line);
          row("vmm create total", vmm);
          row("gateway+store+RPC (POST − vmm)", t1 - t0 - vmm);
          row("vmm: disk copy", num(/disk copy (\d+)/, line));
          row("vmm: mount", num(/mount (\d+)/, line));
          row("vmm: network attach", num(/network (\d+)/, line));
          row("vmm: bundle and cgroup", bundle);
          row("vmm: runsc restore (launcher + runsc, incl. bundle)", restore);
        }
      }
      await product.http("DELETE", `/sandboxes/${id}`);
    }
  }
  if (base !== undefined) {
    // Each sample's new minus the base sample taken right after it: load changes between the
    // two are smaller than across the run.
    const paired = (k: string) =>
      (rows[`new: ${k}`] ?? []).map((v, i) => v - (rows[`base: ${k}`]?.[i] ?? Number.NaN));
    rows["paired new − base: create + first exec"] = paired("create + first exec");
    rows["paired new − base: first exec (REST)"] = paired("first exec (REST)");
    rows["paired new − base: POST /sandboxes"] = paired("POST /sandboxes");
    const vmmRow = BOOT ? "vmm: prepare → runsc run returned" : "vmm: prepare → restored";
    rows[`paired new − base: ${vmmRow}`] = paired(vmmRow);
  }
  const [l1, l5] = loadavg();
  process.stdout.write(`\nhost load average ${l1?.toFixed(2)} / ${l5?.toFixed(2)} (1 / 5 min)\n`);
  report(
    `${BOOT ? "boot" : "template"} create + first exec, spans (${SAMPLES} samples${base === undefined ? "" : ", new and base alternated"})`,
    "ms",
    Object.entries(rows)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, samples]) => ({ name, samples })),
  );
} finally {
  for (const { product } of products) await product.dispose();
}
