import { loadavg } from "node:os";
import { createAgentClient } from "@bhatti/agent-client";
import { report } from "../foundation/stats.js";
const a = JSON.parse(process.argv[2] ?? "{}") as { host: string; control: number; forward: number; token: string; n: number };
const now = () => Number(process.hrtime.bigint()) / 1e6;
const mk = (size: number) => createAgentClient({ control: { host: a.host, port: a.control }, forward: { host: a.host, port: a.forward }, token: a.token, pool: { size, idleMs: 60_000 } });
const c2 = mk(2), c10 = mk(10);
const batch = (c: typeof c2) => Promise.all(Array.from({ length: 10 }, () => c.exec(["true"])));
for (let i = 0; i < 3; i++) { await batch(c2); await batch(c10); }
const rows: Record<string, number[]> = { "pool 2, back to back": [], "pool 10, back to back": [], "pool 10, 300 ms gap": [] };
for (let k = 0; k < a.n; k++) {
  let t = now(); await batch(c2); rows["pool 2, back to back"]!.push(now() - t);
  t = now(); await batch(c10); rows["pool 10, back to back"]!.push(now() - t);
  await new Promise((r) => setTimeout(r, 300));
  t = now(); await batch(c10); rows["pool 10, 300 ms gap"]!.push(now() - t);
}
console.log(`load ${loadavg()[0]}`);
report("10 concurrent execs, agent direct, in the netns", "ms", Object.entries(rows).map(([name, samples]) => ({ name, samples })));
c2.close(); c10.close(); process.exit(0);
