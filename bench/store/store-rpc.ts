// Store RPC overhead: a sandbox read and an event append over the store's Unix socket
// (the real store process) against the same operation as a direct better-sqlite3 call
// in this process, on a database opened the same way (WAL, synchronous=FULL). Then
// 10,000 events appended over the socket, one per call and in batches of 100.
//
//   node --conditions=source --import tsx bench/store/store-rpc.ts [iterations]
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import {
  createEventLog,
  makeTestDir,
  openStoreDatabase,
  removeTestDir,
  startStoreProcess,
} from "@bhatti/service-store";

const iterations = Number(process.argv[2] ?? 2000);
const warmup = 200;

interface Summary {
  p50: number;
  p95: number;
  p99: number;
  mean: number;
}

function summarize(samples: number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return {
    p50: at(0.5),
    p95: at(0.95),
    p99: at(0.99),
    mean: sorted.reduce((a, b) => a + b, 0) / sorted.length,
  };
}

/** Alternates the two operations so both see the same machine load (it is shared). */
async function measurePair(
  n: number,
  rpc: () => unknown,
  direct: () => unknown,
): Promise<[Summary, Summary]> {
  for (let i = 0; i < warmup; i++) {
    await rpc();
    await direct();
  }
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < n; i++) {
    let t = process.hrtime.bigint();
    await rpc();
    a.push(Number(process.hrtime.bigint() - t) / 1e6);
    t = process.hrtime.bigint();
    await direct();
    b.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return [summarize(a), summarize(b)];
}

const fmt = (s: Summary) =>
  `p50 ${s.p50.toFixed(3)} ms  p95 ${s.p95.toFixed(3)} ms  p99 ${s.p99.toFixed(3)} ms  mean ${s.mean.toFixed(3)} ms`;

/** CPU time (user + system) of a process so far, in ms, from /proc: insensitive to other load. */
function processCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  // utime and stime are fields 14 and 15 of stat, in clock ticks (100 Hz on Linux).
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** CPU spent per call in the store process and in this (client) process. */
async function cpuPerCall(
  pid: number,
  n: number,
  op: () => unknown,
): Promise<{ server: number; client: number }> {
  const server0 = processCpuMs(pid);
  const client0 = process.cpuUsage();
  for (let i = 0; i < n; i++) await op();
  const client = process.cpuUsage(client0);
  return { server: (processCpuMs(pid) - server0) / n, client: (client.user + client.system) / 1000 / n };
}

function report(name: string, [rpc, direct]: [Summary, Summary]): void {
  console.log(`\n${name}`);
  console.log(`  rpc     ${fmt(rpc)}`);
  console.log(`  direct  ${fmt(direct)}`);
  console.log(
    `  overhead p50 ${(rpc.p50 - direct.p50).toFixed(3)} ms (target <= 0.300 ms)  ratio p50 ${(rpc.p50 / direct.p50).toFixed(1)}x`,
  );
}

const store = await startStoreProcess();
const directDir = makeTestDir("bench-direct");
try {
  const key = (parseYaml(readFileSync(store.clientConfigFile, "utf8")) as Record<string, string>)[
    "auth_token"
  ];
  const adminId = (await store.client.authenticateApiKey({ apiKey: key ?? "" })).user?.id ?? "";
  const userId =
    (await store.client.createUser({ actingUserId: adminId, name: "bench", limits: { maxSandboxes: 100 } }))
      .user?.id ?? "";
  const sandbox = (await store.client.createSandbox({ userId, name: "bench-box", labels: { a: "b" } }))
    .sandbox;
  const sandboxId = sandbox?.id ?? "";

  // The baseline: the same schema and pragmas, the same row, queried in-process.
  const db = openStoreDatabase(join(directDir, "state.db"));
  db.prepare("INSERT INTO users (id, name, api_key_hash, created_at) VALUES (?, 'bench', 'h', ?)").run(
    userId,
    new Date().toISOString(),
  );
  db.prepare(
    `INSERT INTO sandboxes (id, user_id, name, labels, thermal_since, last_activity_at, created_at, updated_at)
     VALUES (?, ?, 'bench-box', '{"a":"b"}', ?, ?, ?, ?)`,
  ).run(sandboxId, userId, ...Array(4).fill(new Date().toISOString()));
  const readRow = db.prepare("SELECT * FROM sandboxes WHERE id = ?");
  const events = createEventLog(db);
  const event = { type: "sandbox.updated", userId, sandboxId, meta: '{"bench":true}' };

  console.log(
    `store RPC benchmark: ${iterations} iterations each (+${warmup} warm-up), node ${process.version}`,
  );
  console.log(
    `load average at start: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")} (${cpus().length} cores)`,
  );
  report(
    "floor: Health RPC (no database) vs a no-op",
    await measurePair(
      iterations,
      () => store.client.health({}),
      () => undefined,
    ),
  );
  report(
    "sandbox read (GetSandbox by id vs SELECT by id)",
    await measurePair(
      iterations,
      () => store.client.getSandbox({ userId, sandbox: sandboxId }),
      () => readRow.get(sandboxId),
    ),
  );
  report(
    "event append (AppendEvents, 1 event, durable commit vs the same insert in-process)",
    await measurePair(
      iterations,
      () =>
        store.client.appendEvents({
          events: [{ type: event.type, userId, sandboxId, metaJson: event.meta }],
        }),
      () => events.append([event]),
    ),
  );

  console.log("\nCPU per call (load-independent; the latency above includes waiting for the shared CPUs)");
  for (const [name, op] of [
    ["Health", () => store.client.health({})],
    ["GetSandbox", () => store.client.getSandbox({ userId, sandbox: sandboxId })],
    [
      "AppendEvents",
      () =>
        store.client.appendEvents({
          events: [{ type: event.type, userId, sandboxId, metaJson: event.meta }],
        }),
    ],
  ] as const) {
    const cpu = await cpuPerCall(store.pid, iterations, op);
    console.log(
      `  ${name.padEnd(13)} store ${cpu.server.toFixed(3)} ms  client ${cpu.client.toFixed(3)} ms  total ${(cpu.server + cpu.client).toFixed(3)} ms`,
    );
  }
  const directCpu0 = process.cpuUsage();
  for (let i = 0; i < iterations; i++) readRow.get(sandboxId);
  const directCpu = process.cpuUsage(directCpu0);
  console.log(`  direct SELECT ${((directCpu.user + directCpu.system) / 1000 / iterations).toFixed(3)} ms`);

  console.log("\n10,000 events appended over the socket");
  let t = process.hrtime.bigint();
  for (let i = 0; i < 10_000; i++) {
    await store.client.appendEvents({
      events: [{ type: "sandbox.updated", userId, sandboxId, metaJson: `{"i":${i}}` }],
    });
  }
  let ms = Number(process.hrtime.bigint() - t) / 1e6;
  console.log(
    `  one per call, sequential: ${ms.toFixed(0)} ms (${((10_000 / ms) * 1000).toFixed(0)} events/s)`,
  );
  t = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: 16 }, async (_, w) => {
      for (let i = w; i < 10_000; i += 16) {
        await store.client.appendEvents({
          events: [{ type: "sandbox.updated", userId, metaJson: `{"i":${i}}` }],
        });
      }
    }),
  );
  ms = Number(process.hrtime.bigint() - t) / 1e6;
  console.log(
    `  one per call, 16 concurrent callers: ${ms.toFixed(0)} ms (${((10_000 / ms) * 1000).toFixed(0)} events/s)`,
  );
  t = process.hrtime.bigint();
  for (let b = 0; b < 100; b++) {
    await store.client.appendEvents({
      events: Array.from({ length: 100 }, (_, i) => ({
        type: "sandbox.updated",
        userId,
        metaJson: `{"i":${b * 100 + i}}`,
      })),
    });
  }
  ms = Number(process.hrtime.bigint() - t) / 1e6;
  console.log(`  batches of 100: ${ms.toFixed(0)} ms (${((10_000 / ms) * 1000).toFixed(0)} events/s)`);
  t = process.hrtime.bigint();
  for (let i = 0; i < 10_000; i++) events.append([{ ...event, meta: `{"i":${i}}` }]);
  ms = Number(process.hrtime.bigint() - t) / 1e6;
  console.log(
    `  baseline, direct in-process, one per commit: ${ms.toFixed(0)} ms (${((10_000 / ms) * 1000).toFixed(0)} events/s)`,
  );
  db.close();
} finally {
  await store.kill();
  removeTestDir(store.stateDir);
  removeTestDir(directDir);
}
