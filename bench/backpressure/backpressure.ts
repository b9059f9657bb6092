import { setTimeout as sleep } from "node:timers/promises";
import type { WebSocket } from "ws";
import {
  createSandbox,
  execJson,
  gatewayPid,
  openStream,
  rssBytes,
} from "@bhatti/test/hostile/stream-harness";
import { type Product, startProduct } from "@bhatti/test/thermal/product-harness";

/**
 * Gateway memory while clients stall: CLIENTS clients (half WebSocket exec, half NDJSON exec)
 * each run a producer of `yes` output and never read it. The gateway's resident memory (VmRSS)
 * is sampled before (the baseline, same run), throughout (peak) and after the clients left;
 * the in-sandbox producers count the MiB they wrote, which shows where backpressure stopped them.
 * Run as root: node --conditions=source --import tsx bench/backpressure/backpressure.ts
 */
const CLIENTS = Number(process.env["CLIENTS"] ?? 20);
/** Gives up waiting for the producers to block after this long, or past this much growth (a gateway without backpressure). */
const STALL_LIMIT_MS = Number(process.env["STALL_LIMIT_S"] ?? 180) * 1000;
const GROWTH_LIMIT = Number(process.env["GROWTH_LIMIT_MIB"] ?? 1024) * 1024 * 1024;
const PER_SANDBOX = 5;
const MiB = 1024 * 1024;

const producer = (tag: string) => [
  "sh",
  "-c",
  "i=0; while :; do yes | head -c 1048576; i=$((i+1)); echo $i > /tmp/progress-$0; done",
  tag,
];

/** MiB written so far by every producer of the sandbox, by tag. */
async function progressOf(product: Product, sandbox: string): Promise<Map<string, number>> {
  const r = await execJson(product, sandbox, [
    "sh",
    "-c",
    'for f in /tmp/progress-*; do [ -e "$f" ] && echo "$(basename $f) $(cat $f)"; done; true',
  ]);
  if (r.status !== 200) throw new Error(`progress: ${r.status} ${r.text}`);
  const out = new Map<string, number>();
  for (const line of r.stdout.trim().split("\n")) {
    const [tag, n] = line.split(" ");
    if (tag !== undefined && n !== undefined) out.set(tag.replace(/^progress-/, ""), Number(n));
  }
  return out;
}

async function producersRunning(product: Product, sandbox: string): Promise<number> {
  const r = await execJson(product, sandbox, ["sh", "-c", "ps | grep -c '[s]h -c i=0' || true"]);
  return Number(r.stdout.trim());
}

const fmt = (b: number) => `${(b / MiB).toFixed(1)} MiB`;

const product = await startProduct({ flags: ["--thermal-warm-after=1h"] });
try {
  const pid = gatewayPid(product);
  const sandboxes: string[] = [];
  for (let i = 0; i < Math.ceil(CLIENTS / PER_SANDBOX); i++) {
    sandboxes.push(await createSandbox(product, `bp-${i}`));
  }
  for (const id of sandboxes) await execJson(product, id, ["true"]);
  await sleep(1_000);
  const before = rssBytes(pid);
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssBytes(pid));
  }, 100);

  const sockets: WebSocket[] = [];
  const streams: Array<{ close(): void }> = [];
  const tags = new Map<string, string>();
  const t0 = performance.now();
  for (let i = 0; i < CLIENTS; i++) {
    const sandbox = sandboxes[Math.floor(i / PER_SANDBOX)] as string;
    const tag = `c${i}`;
    tags.set(tag, sandbox);
    if (i % 2 === 0) {
      const ws = await product.websocket(`/sandboxes/${sandbox}/exec/ws`);
      await new Promise<void>((resolve, reject) => {
        ws.once("message", (d) =>
          (JSON.parse(d.toString()) as { type?: string }).type === "session"
            ? resolve()
            : reject(new Error(d.toString())),
        );
        ws.send(JSON.stringify({ cmd: producer(tag), max_idle_sec: 1 }));
      });
      ws.pause();
      sockets.push(ws);
    } else {
      const s = await openStream(product, "POST", `/sandboxes/${sandbox}/exec`, {
        body: { cmd: producer(tag) },
        headers: { accept: "application/x-ndjson" },
      });
      streams.push(s);
    }
  }

  // Stalled: no producer moved for 6 reads in a row (500 ms apart).
  let last = "";
  let same = 0;
  let produced = 0;
  let blocked = true;
  const deadline = Date.now() + STALL_LIMIT_MS;
  while (same < 6) {
    if (Date.now() > deadline || peak - before > GROWTH_LIMIT) {
      blocked = false;
      break;
    }
    await sleep(500);
    const all = new Map<string, number>();
    for (const id of sandboxes) for (const [k, v] of await progressOf(product, id)) all.set(k, v);
    const key = JSON.stringify([...all.entries()].sort());
    same = key === last && all.size === CLIENTS ? same + 1 : 0;
    last = key;
    produced = [...all.values()].reduce((a, b) => a + b, 0);
  }
  const stalledMs = performance.now() - t0;
  const atStall = rssBytes(pid);

  for (const ws of sockets) ws.terminate();
  for (const s of streams) s.close();
  for (;;) {
    let n = 0;
    for (const id of sandboxes) n += await producersRunning(product, id);
    if (n === 0) break;
    if (Date.now() > deadline + 120_000) throw new Error(`${n} producers still running`);
    await sleep(500);
  }
  await sleep(2_000);
  clearInterval(sampler);
  const after = rssBytes(pid);
  const pidAfter = gatewayPid(product);

  console.log(
    `gateway RSS with ${CLIENTS} stalled clients (${sockets.length} WebSocket, ${streams.length} NDJSON) on yes output`,
  );
  console.log(`  baseline (idle, before)   ${fmt(before)}`);
  console.log(`  at stall                  ${fmt(atStall)}  (+${fmt(atStall - before)})`);
  console.log(
    `  peak                      ${fmt(peak)}  (+${fmt(peak - before)}, ${fmt((peak - before) / CLIENTS)} per client)`,
  );
  console.log(`  after the clients left    ${fmt(after)}`);
  console.log(
    `  producers ${blocked ? "blocked after  " : "NOT blocked at "} ${produced} MiB written in all (${(produced / CLIENTS).toFixed(1)} MiB per client), ${(stalledMs / 1000).toFixed(1)} s`,
  );
  console.log(`  gateway pid unchanged     ${pidAfter === pid}`);
} finally {
  await product.dispose();
}
