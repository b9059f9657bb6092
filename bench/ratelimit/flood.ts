// Requests/s and latency a good tenant gets from the gateway (GET /sandboxes with its key, one
// request at a time over keep-alive) alone, and while one bad client on the same machine floods
// the gateway with unauthenticated requests (random `bht_<64hex>` keys, 32 at a time). The
// flood runs in its own process, over loopback only, bounded in count and time. Measured on
// `bhatti serve` with the default limits, and once more with the per-address limit lifted so
// every flood request reaches the store (what it was before the limit), all in the same run.
//
//   node --conditions=source --import tsx bench/ratelimit/flood.ts [--n 2000]
import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cleanupServe, makeTestDir, startServe, waitAllHealthy } from "@bhatti/test/foundation/serve-harness";
import { percentiles } from "../foundation/stats.js";

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};

function get(agent: Agent, port: number, path: string, key: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, path, agent, headers: { authorization: `Bearer ${key}` } },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

if (process.argv[2] === "--flood") {
  // The bad client: 32 requests in flight until told to stop (or 120 s / 500k requests at most).
  const port = Number(process.argv[3]);
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  const statuses = new Map<number, number>();
  let stop = false;
  let sent = 0;
  process.on("message", () => {
    stop = true;
  });
  const deadline = Date.now() + 120_000;
  const t0 = Date.now();
  const worker = async () => {
    while (!stop && sent < 500_000 && Date.now() < deadline) {
      sent++;
      const s = await get(agent, port, "/sandboxes", `bht_${randomBytes(32).toString("hex")}`).catch(() => 0);
      statuses.set(s, (statuses.get(s) ?? 0) + 1);
    }
  };
  process.send?.("started");
  await Promise.all(Array.from({ length: 32 }, worker));
  const seconds = (Date.now() - t0) / 1000;
  agent.destroy();
  // Reports once told to stop, even if its own bound ended the flood first.
  const summary = () => {
    process.send?.({ sent, seconds, statuses: Object.fromEntries(statuses) }, () => process.exit(0));
  };
  if (stop) summary();
  else process.once("message", summary);
}

const N = arg("n", 1000);
const rows: string[] = [];
const line = (s: string) => {
  rows.push(s);
  process.stdout.write(`${s}\n`);
};

/** The good tenant's run: N sequential requests; latency samples (ms) and requests/s. */
async function tenant(port: number, key: string) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  for (let i = 0; i < 100; i++) await get(agent, port, "/sandboxes", key);
  const samples: number[] = [];
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const t = process.hrtime.bigint();
    const status = await get(agent, port, "/sandboxes", key);
    if (status !== 200) throw new Error(`good tenant got ${status}`);
    samples.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  agent.destroy();
  return { samples, rps: N / seconds };
}

async function flooded(port: number, key: string) {
  const flood = fork(fileURLToPath(import.meta.url), ["--flood", String(port)], {
    execArgv: ["--conditions=source", "--import", "tsx"],
  });
  flood.on("error", () => undefined);
  await new Promise((ok) => flood.once("message", ok));
  // Let the flood use up its burst and reach its steady state first.
  await new Promise((ok) => setTimeout(ok, 1_000));
  try {
    const r = await tenant(port, key);
    flood.send("stop");
    const summary = await new Promise<{ sent: number; seconds: number; statuses: Record<string, number> }>(
      (ok, fail) => {
        flood.on("message", (m) => {
          if (typeof m === "object") ok(m as never);
        });
        flood.once("exit", (code) => fail(new Error(`flood client exited (${code}) without a summary`)));
      },
    );
    return { ...r, flood: summary };
  } finally {
    flood.kill();
  }
}

const fmt = (
  name: string,
  r: { samples: number[]; rps: number },
  base?: { samples: number[]; rps: number },
) => {
  const p = percentiles(r.samples);
  let s = `${name.padEnd(52)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${p.p50.toFixed(3)} ms  p95 ${p.p95.toFixed(3)} ms  p99 ${p.p99.toFixed(3)} ms`;
  if (base !== undefined) s += `  | ${(r.rps / base.rps).toFixed(2)}× the unflooded req/s`;
  return s;
};

async function measure(label: string, extraArgs: string[]) {
  const dir = makeTestDir();
  const serve = await startServe({ dir, extraArgs: ["--log-level=warn", ...extraArgs] });
  try {
    await waitAllHealthy(serve);
    const key =
      /auth_token: (bht_[0-9a-f]{64})/.exec(readFileSync(join(dir, "client.yaml"), "utf8"))?.[1] ?? "";
    const alone = await tenant(serve.port, key);
    const under = await flooded(serve.port, key);
    const alone2 = await tenant(serve.port, key);
    line(`\n${label}`);
    // The unflooded baseline is both runs together (before and after the flood), so a machine
    // that is busier in one of them does not decide the ratio alone.
    const unflooded = {
      samples: [...alone.samples, ...alone2.samples],
      rps: (2 * N) / (N / alone.rps + N / alone2.rps),
    };
    line(fmt("good tenant alone, before the flood", alone));
    line(fmt("good tenant alone, after the flood", alone2));
    line(fmt("good tenant alone, both runs (baseline)", unflooded));
    line(fmt("good tenant while flooded", under, unflooded));
    const f = under.flood;
    line(
      `flood: ${f.sent} requests in ${f.seconds.toFixed(1)} s (${(f.sent / f.seconds).toFixed(0)}/s), statuses ${JSON.stringify(f.statuses)}`,
    );
  } finally {
    await cleanupServe(dir, [serve]);
  }
}

await measure("Per-address limit on (defaults: burst 120, 600/min)", []);
await measure("Per-address limit lifted (every flood request reaches the store)", [
  "--rate-unauthenticated-burst=1000000",
  "--rate-unauthenticated-per-minute=10000000",
]);
