import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type Product, exec, startProduct } from "@bhatti/test/thermal/product-harness";
import { report } from "../foundation/stats.js";

/**
 * Create + first exec through the whole product (`bhatti serve`, gvisor, busybox), SAMPLES
 * samples each, interleaved, in one run:
 *   - baseline: the bare `runsc restore` of the image's template checkpoint, as the vmm timed
 *     that one step inside each template create (its "sandbox created" log line);
 *   - create + first exec, template path: `POST /sandboxes` then `exec true` (REST);
 *   - create + first exec, normal boot: the same with memory_mb 1000, a shape no template has,
 *     so the vmm boots the image (runsc run + agent start);
 *   - the template path's other steps (disk copy + mount + network, claim), from the same lines.
 * Run as root: nice node --conditions=source --import tsx bench/create/create.ts
 */
const SAMPLES = Number(process.env["SAMPLES"] ?? 10);

async function waitForTemplate(product: Product): Promise<void> {
  const root = join(product.env.stateDir, "templates", "busybox");
  for (let i = 0; i < 1800; i++) {
    if (existsSync(root) && readdirSync(root).some((e) => existsSync(join(root, e, "manifest.json")))) return;
    await sleep(100);
  }
  throw new Error(`no busybox template: ${product.output().slice(-2000)}`);
}

/** The vmm's timing of the normal boot of `id`: runsc run, agent ready (ms). */
function bootStepsOf(product: Product, id: string): { run: number; ready: number } {
  for (const line of product.output().split("\n")) {
    if (!line.includes('"sandbox created"') || !line.includes(id)) continue;
    const m = /runsc run (\d+) ms, agent ready (\d+) ms/.exec(line);
    if (m) return { run: Number(m[1]), ready: Number(m[2]) };
  }
  return { run: Number.NaN, ready: Number.NaN };
}

/** The vmm's timing of the template create of `id`: prepare, runsc restore, claim (ms). */
function stepsOf(product: Product, id: string): { prepare: number; restore: number; claim: number } {
  for (const line of product.output().split("\n")) {
    if (!line.includes('"sandbox created"') || !line.includes(id)) continue;
    const m = /prepare (\d+) ms, runsc restore (\d+) ms, claim (\d+) ms/.exec(line);
    if (m) return { prepare: Number(m[1]), restore: Number(m[2]), claim: Number(m[3]) };
    throw new Error(`sandbox ${id} was not created from the template: ${line}`);
  }
  throw new Error(`no "sandbox created" line for ${id}`);
}

const product = await startProduct({
  flags: ["--thermal-warm-after=1h", "--thermal-cold-after=2h", "--create-template-images=busybox"],
});
try {
  await waitForTemplate(product);
  const tplRoot = join(product.env.stateDir, "templates", "busybox");
  const tplSize = execFileSync("du", ["-sm", "--apparent-size", tplRoot]).toString().split("\t")[0];
  const diskUsed = execFileSync("du", ["-sm", tplRoot]).toString().split("\t")[0];
  const createAndExec = async (name: string, body: Record<string, unknown>) => {
    const t0 = performance.now();
    const res = await product.http("POST", "/sandboxes", { body: { name, image: "busybox", ...body } });
    if (res.status !== 201) throw new Error(`create ${name}: ${res.status} ${res.text}`);
    const id = res.json<{ id: string }>().id;
    const r = await exec(product, id, ["true"]);
    if (r.status !== 200 || r.body.exit_code !== 0)
      throw new Error(`exec: ${r.status} ${JSON.stringify(r.body)}`);
    return { id, ms: performance.now() - t0 };
  };
  const restore: number[] = [];
  const prepare: number[] = [];
  const claim: number[] = [];
  const fromTemplate: number[] = [];
  const boot: number[] = [];
  const bootRun: number[] = [];
  const bootReady: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const t = await createAndExec(`tpl-${i}`, {});
    fromTemplate.push(t.ms);
    await sleep(50);
    const steps = stepsOf(product, t.id);
    restore.push(steps.restore);
    prepare.push(steps.prepare);
    claim.push(steps.claim);
    const b = await createAndExec(`boot-${i}`, { memory_mb: 1000 });
    boot.push(b.ms);
    await sleep(50);
    const bs = bootStepsOf(product, b.id);
    bootRun.push(bs.run);
    bootReady.push(bs.ready);
    await product.http("DELETE", `/sandboxes/${t.id}`);
    await product.http("DELETE", `/sandboxes/${b.id}`);
  }
  const [l1, l5] = loadavg();
  process.stdout.write(
    `\nhost load average ${l1?.toFixed(1)} / ${l5?.toFixed(1)} (1 / 5 min) on ${execFileSync("nproc")
      .toString()
      .trim()} CPUs; sandbox: busybox, 1 cpu, 1024 MiB (boot path: 1000 MiB); template ${tplSize} MiB apparent, ${diskUsed} MiB on disk (checkpoint + sparse disk)\n`,
  );
  report(`create + first exec (${SAMPLES} samples)`, "ms", [
    { name: "bare runsc restore (template)", samples: restore },
    { name: "create+exec, template (REST)", samples: fromTemplate },
    { name: "create+exec, normal boot (REST)", samples: boot },
    // What a pool of already restored sandboxes could reach at best: this sample's template
    // create with its restore and prepare (disk copy, mount, network) taken out. A claim-time
    // network move (docs/templates.md, "A pool of ready sandboxes") would add to it.
    {
      name: "pool lower bound (template − restore − prepare)",
      samples: fromTemplate.map((ms, i) => ms - (restore[i] ?? 0) - (prepare[i] ?? 0)),
    },
  ]);
  report(`template create, vmm steps (${SAMPLES} samples)`, "ms", [
    { name: "runsc restore", samples: restore },
    { name: "disk copy + mount + network", samples: prepare },
    { name: "claim (CLAIM_REQ round trip)", samples: claim },
  ]);
  report(`normal boot, vmm steps (${SAMPLES} samples; baseline: the template's runsc restore)`, "ms", [
    { name: "runsc restore (template path)", samples: restore },
    { name: "runsc run (boot path)", samples: bootRun },
    { name: "agent ready (boot path)", samples: bootReady },
  ]);
} finally {
  await product.dispose();
}
