// Agent protocol benchmarks: the agent runs as a real process on loopback; every figure has
// a baseline measured in the same run, in this process.
//   node --conditions=source --import tsx bench/agent/agent-bench.ts [--n 300]
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { open, readFile, rename, stat } from "node:fs/promises";
import { join } from "node:path";
import { AGENT_NODE_FLAGS, createAgentClient } from "@bhatti/agent-client";
import { AGENT_BUNDLE, startAgentProcess } from "@bhatti/agent/testing";

const nIndex = process.argv.indexOf("--n");
const N = nIndex > 0 ? Number(process.argv[nIndex + 1]) : 300;

interface Stats {
  p50: number;
  p95: number;
  p99: number;
  mean: number;
}

function stats(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(s.length * q))]!;
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), mean: s.reduce((a, b) => a + b, 0) / s.length };
}

/**
 * Times `op` and its baseline alternately (A, B, A, B…), so load from other processes on
 * the shared machine hits both sides alike.
 */
async function measurePair(
  n: number,
  op: () => Promise<unknown>,
  baseline: () => Promise<unknown>,
  warmup = 30,
): Promise<[Stats, Stats]> {
  for (let i = 0; i < warmup; i++) {
    await op();
    await baseline();
  }
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < n; i++) {
    for (const [fn, out] of [
      [op, a],
      [baseline, b],
    ] as const) {
      const t0 = process.hrtime.bigint();
      await fn();
      out.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
  return [stats(a), stats(b)];
}

const rows: string[][] = [];
function report(name: string, [s, base]: [Stats, Stats], note = "") {
  rows.push([
    name,
    s.p50.toFixed(3),
    s.p95.toFixed(3),
    s.p99.toFixed(3),
    base.p50.toFixed(3),
    `${(s.p50 / base.p50).toFixed(2)}x`,
    `${(s.p50 - base.p50).toFixed(3)}`,
    note,
  ]);
}

function spawnTrue(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("true", { stdio: ["pipe", "pipe", "pipe"], detached: true });
    child.once("error", reject);
    child.once("close", () => resolve());
  });
}

/** RSS, and its anonymous part (heap, buffers; file-backed pages are clean, shared Node code). */
function rssKiB(pid: number): { total: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
  return { total: field("VmRSS"), anon: field("RssAnon") };
}
const mib = (kib: number) => (kib / 1024).toFixed(1);

if (!existsSync(AGENT_BUNDLE)) {
  process.stderr.write("bundle missing: run node scripts/build.mjs first\n");
  process.exit(1);
}

// The agent runs with the V8 flags the engine uses (agentLaunchArgv).
const agent = await startAgentProcess({ nodeFlags: [...AGENT_NODE_FLAGS] });
const idleRssStart = rssKiB(agent.child.pid!);
const client = createAgentClient({ control: agent.control, forward: agent.forward, token: agent.token });
const unpooled = createAgentClient({
  control: agent.control,
  forward: agent.forward,
  token: agent.token,
  pool: false,
});
try {
  // exec true
  report(
    "exec true (client, pooled)",
    await measurePair(N, () => client.exec(["true"]), spawnTrue),
    "baseline: spawn('true') here",
  );
  report(
    "exec true (client, no pool)",
    await measurePair(N, () => unpooled.exec(["true"]), spawnTrue),
    "connect+AUTH per call",
  );

  // Pure protocol round trip: connection, request, one reply frame, close.
  const statPath = join(agent.workspace, "stat-me");
  writeFileSync(statPath, "x");
  report(
    "stat (protocol round trip)",
    await measurePair(
      N,
      () => client.stat(statPath),
      () => stat(statPath),
    ),
    "baseline: fs.stat",
  );

  // 1 KiB read / write
  const kib = randomBytes(1024);
  const readPath = join(agent.workspace, "read-1k");
  writeFileSync(readPath, kib);
  report(
    "file read 1 KiB",
    await measurePair(
      N,
      () => client.readFileBuffer(readPath),
      () => readFile(readPath),
    ),
    "baseline: fs.readFile",
  );
  const writePath = join(agent.workspace, "write-1k");
  const baseWrite = async () => {
    const tmp = `${writePath}.base-tmp`;
    const fh = await open(tmp, "w", 0o644);
    await fh.write(kib);
    await fh.datasync();
    await fh.close();
    await rename(tmp, writePath);
  };
  report(
    "file write 1 KiB",
    await measurePair(N, () => client.writeFile(writePath, kib), baseWrite),
    "baseline: tmp+fdatasync+rename",
  );

  // 10 concurrent execs (wall clock)
  const reps = Math.max(10, Math.floor(N / 10));
  report(
    "10 concurrent exec true",
    await measurePair(
      reps,
      () => Promise.all(Array.from({ length: 10 }, () => client.exec(["true"]))),
      () => Promise.all(Array.from({ length: 10 }, spawnTrue)),
      3,
    ),
    "baseline: 10 concurrent spawn",
  );

  // 1 MiB read throughput
  const mibPath = join(agent.workspace, "read-1m");
  writeFileSync(mibPath, randomBytes(1024 * 1024));
  const nMib = Math.max(20, Math.floor(N / 5));
  const [oneMib, baseMib] = await measurePair(
    nMib,
    () => client.readFileBuffer(mibPath),
    () => readFile(mibPath),
    5,
  );
  report(
    "file read 1 MiB",
    [oneMib, baseMib],
    `${(1000 / oneMib.p50).toFixed(0)} MiB/s at p50 (baseline ${(1000 / baseMib.p50).toFixed(0)} MiB/s)`,
  );

  client.drainPool();
  await new Promise((r) => setTimeout(r, 1500));
  const idleRssAfter = rssKiB(agent.child.pid!);

  const header = ["benchmark (ms)", "p50", "p95", "p99", "baseline p50", "ratio", "overhead p50", "note"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ");
  process.stdout.write(`n=${N}  node ${process.version}\n${line(header)}\n${rows.map(line).join("\n")}\n`);
  process.stdout.write(
    `agent idle RSS (target <= 50 MiB): ${mib(idleRssStart.total)} MiB at start (anon ${mib(idleRssStart.anon)}), ` +
      `${mib(idleRssAfter.total)} MiB idle after the run (anon ${mib(idleRssAfter.anon)})\n`,
  );
} finally {
  client.close();
  unpooled.close();
  await agent.stop();
}
