// The seed table's 1 KiB file rows, as it runs them (after a 55 ms pause: REST write, REST read,
// direct write, direct read), but with the order rotated every iteration, so each call is timed
// both as the first call after the pause and later. Tells whether a row's figure is the call's
// cost or its place in the loop.
//
//   node --conditions=source --import tsx bench/writepath/file-order.ts [--n 160] [--base ROOT] [--only rest|direct|alternate]
//
// --base ROOT also starts the product of an earlier build (its dist directories, see
// bench/restpath/rest-vs-agent.ts); iterations alternate between the products.
import { Agent } from "node:http";
import { loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createAgentClient } from "@bhatti/agent-client";
import { VmmService } from "@bhatti/proto";
import { createServiceClient } from "@bhatti/runtime";
import { type Product, startProduct } from "@bhatti/test/thermal/product-harness";
import { createRestCall, expectStatus } from "../foundation/rest-client.js";
import { percentiles } from "../foundation/stats.js";

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const N = Number(arg("--n") ?? 160);
const baseRoot = arg("--base");
/**
 * `--only rest` or `--only direct`: time only those calls; `--only alternate`: blocks of 10
 * iterations with the REST calls alone, then 10 with all four (what the direct calls cost them).
 */
const only = arg("--only");

interface Setup {
  readonly label: string;
  readonly product: Product;
  readonly ops: [string, () => Promise<unknown>][];
  close(): void;
}

async function setUp(label: string, root: string | undefined): Promise<Setup> {
  const product = await startProduct({
    flags: ["--log-level=warn", "--thermal-warm-after=1h", "--thermal-cold-after=1h"],
    ...(root !== undefined ? { serveBundle: join(root, "cli/dist/bhatti.mjs") } : {}),
  });
  const vmm = createServiceClient(VmmService, join(product.socketDir, "vmm.sock"));
  try {
    const ep = await product.env.options.dialer.endpoint("127.0.0.1", product.port);
    const httpAgent = new Agent({ keepAlive: true, maxSockets: 4 });
    const call = createRestCall({ endpoint: ep, agent: httpAgent, key: product.userKey });
    const created = await expectStatus(
      call("POST", "/sandboxes", JSON.stringify({ name: "order", image: "busybox", keep_hot: true })),
      201,
    );
    const id = (JSON.parse(created.body.toString()) as { id: string }).id;
    const ag = (await vmm.client.getSandboxStatus({ id })).sandbox?.agent;
    if (ag === undefined) throw new Error("no agent endpoint");
    const direct = createAgentClient({
      control: await product.env.options.dialer.endpoint(ag.host, ag.controlPort),
      forward: await product.env.options.dialer.endpoint(ag.host, ag.forwardPort),
      token: ag.token,
    });
    const kib = Buffer.alloc(1024, "x");
    await direct.writeFile("/tmp/seed2.bin", kib);
    await expectStatus(call("PUT", `/sandboxes/${id}/files?path=/tmp/seed.bin`, kib), 200);
    return {
      label,
      product,
      ops: [
        [
          "REST write",
          () => expectStatus(call("PUT", `/sandboxes/${id}/files?path=/tmp/seed.bin`, kib), 200),
        ],
        [
          "REST read",
          async () => {
            const r = await expectStatus(call("GET", `/sandboxes/${id}/files?path=/tmp/seed.bin`), 200);
            if (r.body.byteLength !== 1024) throw new Error(`read ${r.body.byteLength}`);
          },
        ],
        ["direct write", () => direct.writeFile("/tmp/seed2.bin", kib)],
        ["direct read", () => direct.readFileBuffer("/tmp/seed2.bin")],
      ],
      close() {
        direct.close();
        httpAgent.destroy();
        vmm.close();
      },
    };
  } catch (e) {
    vmm.close();
    await product.dispose();
    throw e;
  }
}

const setups: Setup[] = [];
try {
  if (baseRoot !== undefined) setups.push(await setUp("base", baseRoot));
  setups.push(await setUp(baseRoot !== undefined ? "new" : "", undefined));
  /** `${label} ${op} first|later` → samples. */
  const samples = new Map<string, number[]>();
  const load0 = loadavg();
  for (let i = -8 * setups.length; i < N * setups.length; i++) {
    const s = setups[((i % setups.length) + setups.length) % setups.length] as Setup;
    const round = Math.floor(i / setups.length);
    const k = ((round % 4) + 4) % 4;
    const mixed = only === "alternate" && Math.floor(round / 10) % 2 === 1;
    const ops = s.ops.filter(
      ([name]) =>
        only === undefined || mixed || name.toLowerCase().startsWith(only === "alternate" ? "rest" : only),
    );
    const kk = k % ops.length;
    const order = [...ops.slice(kk), ...ops.slice(0, kk)];
    for (const [pos, [name, fn]] of order.entries()) {
      const t = performance.now();
      await fn();
      const ms = performance.now() - t;
      if (i < 0) continue;
      const place = only === "alternate" ? (mixed ? "mixed" : "alone") : pos === 0 ? "first" : "later";
      for (const key of [`${s.label} ${name} ${place}`, `${s.label} ${name} all`]) {
        const l = samples.get(key) ?? [];
        l.push(ms);
        samples.set(key, l);
      }
    }
    // As the seed table: reads are limited per user, so every iteration pauses, untimed.
    await sleep(55);
  }
  const load1 = loadavg();
  process.stdout.write(
    `\n1 KiB file calls by place in the loop (first after a 55 ms pause, or later), n=${N} iterations per product\n`,
  );
  process.stdout.write(
    `load average before ${load0.map((l) => l.toFixed(2)).join(" ")}, after ${load1.map((l) => l.toFixed(2)).join(" ")}\n`,
  );
  for (const [name, v] of [...samples].sort(([a], [b]) => a.localeCompare(b))) {
    const p = percentiles(v);
    process.stdout.write(
      `${name.padEnd(30)} p50 ${p.p50.toFixed(2).padStart(6)}  p95 ${p.p95.toFixed(2).padStart(6)} ms  n=${p.n}\n`,
    );
  }
  for (const s of only === undefined ? setups : [])
    for (const kind of ["write", "read"]) {
      const p50 = (w: string) => percentiles(samples.get(`${s.label} ${w} all`) ?? []).p50;
      process.stdout.write(
        `${s.label} REST − direct, ${kind} (p50s, all places): +${(p50(`REST ${kind}`) - p50(`direct ${kind}`)).toFixed(2)} ms\n`,
      );
    }
} finally {
  for (const s of setups) {
    s.close();
    await s.product.dispose();
  }
}
