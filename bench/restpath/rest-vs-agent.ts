// REST on top of the agent: the whole product (bhatti serve) with one hot busybox sandbox, and
// the same three operations timed through the gateway's REST API and through an agent client
// talking to the sandbox directly, interleaved (the pair's order alternates every iteration).
// Both paths run inside the product's netns (plain TCP, no relay), so the difference is the
// gateway's own cost.
//
//   node --conditions=source --import tsx bench/restpath/rest-vs-agent.ts [--n 150] [--profile DIR] [--base ROOT]
//
// --base ROOT also starts the product of an earlier build (a copy of its cli/dist, gateway/dist and
// services/*/dist under ROOT, with package.json and a node_modules link) and times both, interleaved.
//
// --profile DIR starts every service with `--cpu-prof --cpu-prof-dir=DIR` (the gateway's profile is
// the one whose file name carries its pid; the bench prints it).
import { readFileSync } from "node:fs";
import { Agent } from "node:http";
import { loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createAgentClient } from "@bhatti/agent-client";
import { VmmService } from "@bhatti/proto";
import { createServiceClient } from "@bhatti/runtime";
import { runInsideHostNetns } from "@bhatti/test/engine-conformance/in-host-netns";
import { type Product, startProduct } from "@bhatti/test/thermal/product-harness";
import { createRestCall, expectStatus } from "../foundation/rest-client.js";
import { percentiles } from "../foundation/stats.js";

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
await runInsideHostNetns();
const N = Number(arg("--n") ?? 150);
const profileDir = arg("--profile");
/** A copy of an earlier build (the dist directories): run beside this one, interleaved. */
const baseRoots = process.argv.flatMap((a, i) =>
  a === "--base" && process.argv[i + 1] !== undefined ? [process.argv[i + 1] as string] : [],
);

interface Setup {
  readonly label: string;
  /** CPU time of the gateway's main thread so far, in ms (schedstat: ns precision). */
  gatewayCpuMs(): number;
  readonly product: Product;
  readonly ops: Record<string, () => Promise<unknown>>;
  close(): void;
}

/** One product (from `root`, default this checkout) with one hot sandbox and a direct agent client. */
async function setUp(label: string, root: string | undefined): Promise<Setup> {
  const product = await startProduct({
    flags: ["--log-level=warn", "--thermal-warm-after=1h", "--thermal-cold-after=1h"],
    ...(root !== undefined ? { serveBundle: join(root, "cli/dist/bhatti.mjs") } : {}),
    ...(profileDir !== undefined
      ? { env: { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profileDir} --cpu-prof-interval=100` } }
      : {}),
  });
  const vmm = createServiceClient(VmmService, join(product.socketDir, "vmm.sock"));
  try {
    const ep = await product.env.options.dialer.endpoint("127.0.0.1", product.port);
    const httpAgent = new Agent({ keepAlive: true, maxSockets: 4 });
    const call = createRestCall({ endpoint: ep, agent: httpAgent, key: product.userKey });
    const ok = expectStatus;
    const created = await ok(
      call("POST", "/sandboxes", JSON.stringify({ name: "restpath", image: "busybox", keep_hot: true })),
      201,
    );
    const id = (JSON.parse(created.body.toString()) as { id: string }).id;
    const st = await vmm.client.getSandboxStatus({ id });
    const ag = st.sandbox?.agent;
    if (ag === undefined) throw new Error("no agent endpoint");
    const direct = createAgentClient({
      control: await product.env.options.dialer.endpoint(ag.host, ag.controlPort),
      forward: await product.env.options.dialer.endpoint(ag.host, ag.forwardPort),
      token: ag.token,
    });
    const gatewayPid = product.childPid("gateway/dist");
    if (gatewayPid === undefined) throw new Error("no gateway process");
    const kib = Buffer.alloc(1024, "x");
    const execBody = JSON.stringify({ cmd: ["true"] });
    await direct.writeFile("/tmp/r.bin", kib);
    const ops: Record<string, () => Promise<unknown>> = {
      "REST exec true": async () => {
        const r = await ok(call("POST", `/sandboxes/${id}/exec`, execBody));
        if ((JSON.parse(r.body.toString()) as { exit_code: number }).exit_code !== 0) throw new Error("exit");
      },
      "direct exec true": async () => {
        if ((await direct.exec(["true"])).exitCode !== 0) throw new Error("exit");
      },
      "REST read 1 KiB": async () => {
        const r = await ok(call("GET", `/sandboxes/${id}/files?path=/tmp/r.bin`));
        if (r.body.byteLength !== 1024) throw new Error(`read ${r.body.byteLength}`);
      },
      "direct read 1 KiB": async () => {
        const { data } = await direct.readFileBuffer("/tmp/r.bin");
        if (data.byteLength !== 1024) throw new Error(`read ${data.byteLength}`);
      },
      "REST write 1 KiB": () => ok(call("PUT", `/sandboxes/${id}/files?path=/tmp/w1.bin`, kib)),
      "direct write 1 KiB": () => direct.writeFile("/tmp/w2.bin", kib),
      "GET /health": () => ok(call("GET", "/health")),
    };
    return {
      label,
      product,
      gatewayCpuMs() {
        const text = readFileSync(`/proc/${gatewayPid}/task/${gatewayPid}/schedstat`, "utf8");
        return Number(text.split(" ")[0]) / 1e6;
      },
      ops,
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
  // `--base LABEL=ROOT` (repeatable): earlier builds, each its own product, beside this checkout's.
  for (const b of baseRoots) {
    const eq = b.indexOf("=");
    setups.push(await setUp(eq > 0 ? b.slice(0, eq) : "base", eq > 0 ? b.slice(eq + 1) : b));
  }
  setups.push(await setUp(baseRoots.length > 0 ? "new" : "", undefined));
  const kinds = ["exec true", "read 1 KiB", "write 1 KiB"];
  // Every iteration runs each kind on every setup, REST and direct, in an order that rotates.
  const names = (kind: string) =>
    setups.flatMap((s) => [`${s.label} REST ${kind}`, `${s.label} direct ${kind}`]);
  const samples = new Map<string, number[]>();
  const opOf = (name: string) => {
    for (const s of setups) {
      const prefix = `${s.label} `;
      if (name.startsWith(prefix)) return s.ops[name.slice(prefix.length)];
    }
    return undefined;
  };
  /** The gateway's main-thread CPU time during each REST call (its own work, whatever the load). */
  const cpu = new Map<string, number[]>();
  const time = async (name: string, record: boolean) => {
    const fn = opOf(name);
    const setup = setups.find((s) => name.startsWith(`${s.label} `));
    if (fn === undefined || setup === undefined) throw new Error(name);
    const c = setup.gatewayCpuMs();
    const t = performance.now();
    await fn();
    const elapsed = performance.now() - t;
    if (!record) return;
    const list = samples.get(name) ?? [];
    list.push(elapsed);
    samples.set(name, list);
    if (name.includes("REST") || name.includes("health")) {
      const cl = cpu.get(name) ?? [];
      cl.push(setup.gatewayCpuMs() - c);
      cpu.set(name, cl);
    }
  };
  const load0 = loadavg();
  let cpuAt0 = setups.map(() => 0);
  for (let i = -20; i < N; i++) {
    if (i === 0) cpuAt0 = setups.map((s) => s.gatewayCpuMs());
    const started = performance.now();
    for (const kind of kinds) {
      const order = names(kind);
      const k = ((i % order.length) + order.length) % order.length;
      for (const name of [...order.slice(k), ...order.slice(0, k)]) await time(name, i >= 0);
    }
    for (const s of setups) await time(`${s.label} GET /health`, i >= 0);
    // REST reads are limited per user to 1200/min: keep each iteration ≥ 55 ms, untimed.
    const left = 55 - (performance.now() - started);
    if (left > 0) await sleep(left);
  }
  const load1 = loadavg();
  const cpuTotals = setups.map((s, k) => s.gatewayCpuMs() - (cpuAt0[k] ?? 0));
  const p50s = new Map<string, number>();
  const platform = setups[0]?.product.env.options.platform;
  process.stdout.write(
    `\nREST vs agent direct, one hot busybox sandbox per product (gvisor ${platform}), n=${N}\n`,
  );
  process.stdout.write(
    `load average before ${load0.map((l) => l.toFixed(2)).join(" ")}, after ${load1.map((l) => l.toFixed(2)).join(" ")}\n`,
  );
  for (const [name, s] of [...samples].sort(([a], [b]) => a.localeCompare(b))) {
    const p = percentiles(s);
    p50s.set(name, p.p50);
    process.stdout.write(
      `${name.padEnd(28)} p50 ${p.p50.toFixed(2).padStart(7)}  p95 ${p.p95.toFixed(2).padStart(7)}  p99 ${p.p99.toFixed(2).padStart(7)} ms  n=${p.n}\n`,
    );
  }
  for (const [name, c] of [...cpu].sort(([a], [b]) => a.localeCompare(b))) {
    const p = percentiles(c);
    const mean = c.reduce((a, b) => a + b, 0) / c.length;
    process.stdout.write(
      `gateway CPU, ${name.padEnd(24)} p50 ${p.p50.toFixed(3)}  mean ${mean.toFixed(3)} ms (main thread, during the call)\n`,
    );
  }
  for (const [k, s] of setups.entries())
    process.stdout.write(
      `gateway CPU, ${s.label} all: ${((cpuTotals[k] ?? 0) / N).toFixed(3)} ms per iteration (every call and what follows)\n`,
    );
  // Paired per iteration (the two calls ran back to back), then the median: robust to load swings.
  const pairedMedian = (a: string, b: string) => {
    const x = samples.get(a) ?? [];
    const y = samples.get(b) ?? [];
    return percentiles(x.map((v, i) => v - (y[i] ?? Number.NaN)).filter((v) => !Number.isNaN(v))).p50;
  };
  const signed = (v: number) => `${v >= 0 ? "+" : ""}${v.toFixed(2)} ms`;
  for (const s of setups)
    for (const kind of kinds) {
      const d = (p50s.get(`${s.label} REST ${kind}`) ?? 0) - (p50s.get(`${s.label} direct ${kind}`) ?? 0);
      const paired = pairedMedian(`${s.label} REST ${kind}`, `${s.label} direct ${kind}`);
      process.stdout.write(
        `${s.label} REST − direct, ${kind}: ${signed(d)} (difference of p50s), ${signed(paired)} (median of paired differences)\n`,
      );
    }
  for (const b of setups.slice(0, -1))
    for (const kind of [
      ...kinds.map((k) => `REST ${k}`),
      ...kinds.map((k) => `direct ${k}`),
      "GET /health",
    ]) {
      process.stdout.write(
        `new − ${b.label}, ${kind}: ${signed(pairedMedian(`new ${kind}`, `${b.label} ${kind}`))} (median of paired differences)\n`,
      );
    }
} finally {
  for (const s of setups) {
    s.close();
    await s.product.dispose();
  }
}
