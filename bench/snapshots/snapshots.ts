import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { RUNSC_PATH } from "@bhatti/test/engine-conformance/gvisor-factory";
import { type Product, exec, startProduct } from "@bhatti/test/thermal/product-harness";
import { report } from "../foundation/stats.js";

/**
 * Named snapshots through the whole product (`bhatti serve`, gvisor, busybox + a Node process
 * holding 64 MiB), SAMPLES samples each, with baselines measured in the same run on a twin
 * sandbox:
 *   - create: total time of `POST /sandboxes/:id/checkpoint` (full and filesystem-only) and the
 *     pause the sandbox saw (the largest gap of a 5 ms ticker inside it), against a bare
 *     `runsc checkpoint --leave-running` of the twin (same flags as the vmm's);
 *   - resume into a new sandbox + first `exec true`, against a cold start of the twin (`runsc
 *     restore` of its own checkpoint, same id) + first `exec true`.
 * Run as root: nice node --conditions=source --import tsx bench/snapshots/snapshots.ts
 */
const SAMPLES = Number(process.env["SAMPLES"] ?? 10);

// Records the largest gap between its 5 ms ticks in /tmp/gap; /tmp/reset zeroes it.
const TICKER = [
  "const fs = require('fs'); const a = Buffer.alloc(64 << 20, 1);",
  "let last = Date.now(), max = 0;",
  "setInterval(() => { const n = Date.now(); if (n - last > max) max = n - last; last = n; a[0]++;",
  "  if (fs.existsSync('/tmp/reset')) { fs.unlinkSync('/tmp/reset'); max = 0; }",
  "  fs.writeFileSync('/tmp/gap', String(max)); }, 5);",
].join("\n");

async function ok(product: Product, id: string, script: string): Promise<string> {
  const r = await exec(product, id, ["sh", "-c", script]);
  if (r.status !== 200 || r.body.exit_code !== 0)
    throw new Error(`exec ${script}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.stdout;
}

/** Zeroes the ticker's max gap and waits until the ticker took it. */
async function resetGap(product: Product, id: string): Promise<void> {
  await ok(product, id, "touch /tmp/reset; while [ -e /tmp/reset ]; do sleep 0.05; done");
}

async function readGap(product: Product, id: string): Promise<number> {
  await sleep(100);
  return Number((await ok(product, id, "cat /tmp/gap")).trim());
}

const product = await startProduct({ flags: ["--thermal-warm-after=1h", "--thermal-cold-after=2h"] });
const scratch = mkdtempSync("/tmp/bhatti-test-snapbench-");
try {
  const create = async (name: string) => {
    const res = await product.http("POST", "/sandboxes", { body: { name, image: "busybox" } });
    if (res.status !== 201) throw new Error(`create ${name}: ${res.status} ${res.text}`);
    const id = res.json<{ id: string }>().id;
    const node = await product.http("POST", `/sandboxes/${id}/exec`, {
      body: {
        cmd: [
          "/.bhatti/lib/ld-linux-x86-64.so.2",
          "--library-path",
          "/.bhatti/lib",
          "/.bhatti/node",
          "-e",
          TICKER,
        ],
        detach: true,
      },
    });
    if (node.status !== 200) throw new Error(`node: ${node.status} ${node.text}`);
    await ok(product, id, "while [ ! -e /tmp/gap ]; do sleep 0.05; done");
    return id;
  };
  const subject = await create("snap-subject");
  const twin = await create("snap-twin");
  const runsc = (args: string[]) =>
    execFileSync(RUNSC_PATH, [
      `--root=${join(product.env.stateDir, "runsc")}`,
      `--platform=${product.env.options.platform}`,
      "--network=sandbox",
      "--net-disconnect-ok",
      "--overlay2=none",
      ...args,
    ]);

  const bareTotal: number[] = [];
  const bareGap: number[] = [];
  const fullTotal: number[] = [];
  const fullGap: number[] = [];
  const fsTotal: number[] = [];
  const fsGap: number[] = [];
  const coldStart: number[] = [];
  const resumeNew: number[] = [];

  for (let i = 0; i < SAMPLES; i++) {
    // Baseline: bare runsc checkpoint --leave-running of the twin.
    await resetGap(product, twin);
    const image = join(scratch, `bare-${i}`);
    let t0 = performance.now();
    runsc(["checkpoint", `--image-path=${image}`, "--compression=none", "--leave-running", twin]);
    bareTotal.push(performance.now() - t0);
    bareGap.push(await readGap(product, twin));
    rmSync(image, { recursive: true, force: true });

    await resetGap(product, subject);
    t0 = performance.now();
    const full = await product.http("POST", `/sandboxes/${subject}/checkpoint`, {
      body: { name: `full-${i}` },
    });
    fullTotal.push(performance.now() - t0);
    if (full.status !== 201) throw new Error(`snapshot: ${full.status} ${full.text}`);
    fullGap.push(await readGap(product, subject));

    await resetGap(product, subject);
    t0 = performance.now();
    const fs = await product.http("POST", `/sandboxes/${subject}/checkpoint`, {
      body: { name: `fs-${i}`, type: "filesystem" },
    });
    fsTotal.push(performance.now() - t0);
    if (fs.status !== 201) throw new Error(`fs snapshot: ${fs.status} ${fs.text}`);
    fsGap.push(await readGap(product, subject));

    // Baseline: cold start of the twin (runsc restore, same id) + first exec.
    const stop = await product.http("POST", `/sandboxes/${twin}/stop`);
    if (stop.status !== 200) throw new Error(`stop: ${stop.status} ${stop.text}`);
    t0 = performance.now();
    const start = await product.http("POST", `/sandboxes/${twin}/start`);
    if (start.status !== 200) throw new Error(`start: ${start.status} ${start.text}`);
    await ok(product, twin, "true");
    coldStart.push(performance.now() - t0);

    t0 = performance.now();
    const fork = await product.http("POST", `/snapshots/full-${i}/resume`, { body: { name: `fork-${i}` } });
    if (fork.status !== 201) throw new Error(`resume: ${fork.status} ${fork.text}`);
    const forkId = fork.json<{ id: string }>().id;
    await ok(product, forkId, "true");
    resumeNew.push(performance.now() - t0);

    await product.http("DELETE", `/sandboxes/${forkId}`);
    await product.http("DELETE", `/snapshots/full-${i}`);
    await product.http("DELETE", `/snapshots/fs-${i}`);
  }

  const [l1, l5] = loadavg();
  process.stdout.write(
    `\nhost load average ${l1?.toFixed(1)} / ${l5?.toFixed(1)} (1 / 5 min) on ${execFileSync("nproc")
      .toString()
      .trim()} CPUs; run under nice; sandbox: busybox + node holding 64 MiB\n`,
  );
  report(`snapshot create: pause seen inside the sandbox (${SAMPLES} samples)`, "ms", [
    { name: "bare runsc ckpt --leave-running", samples: bareGap },
    { name: "create full", samples: fullGap },
    { name: "create --fs-only", samples: fsGap },
  ]);
  report(`snapshot create: total (${SAMPLES} samples)`, "ms", [
    { name: "bare runsc ckpt --leave-running", samples: bareTotal },
    { name: "create full (REST)", samples: fullTotal },
    { name: "create --fs-only (REST)", samples: fsTotal },
  ]);
  report(`resume + first exec (${SAMPLES} samples)`, "ms", [
    { name: "cold start (same id) + exec", samples: coldStart },
    { name: "resume as new sandbox + exec", samples: resumeNew },
  ]);
} finally {
  rmSync(scratch, { recursive: true, force: true });
  await product.dispose();
}
