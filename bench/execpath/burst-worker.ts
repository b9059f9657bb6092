// 10 commands at once, started inside the sandbox by one shell (no agent involved per command),
// back to back and after a 300 ms gap: is the cost of a burst the guest's own?
import { loadavg } from "node:os";
import { createAgentClient } from "@bhatti/agent-client";
import { report } from "../foundation/stats.js";
const a = JSON.parse(process.argv[2] ?? "{}") as { host: string; control: number; forward: number; token: string; n: number };
const now = () => Number(process.hrtime.bigint()) / 1e6;
const c = createAgentClient({ control: { host: a.host, port: a.control }, forward: { host: a.host, port: a.forward }, token: a.token });
const burst = ["sh", "-c", "/bin/true & /bin/true & /bin/true & /bin/true & /bin/true & /bin/true & /bin/true & /bin/true & /bin/true & /bin/true & wait"];
const empty = ["sh", "-c", ":"];
const rows: Record<string, number[]> = { "sh: 10 × true in background, back to back": [], "same after 300 ms gap": [], "sh -c : (the exec alone)": [] };
for (let i = 0; i < 3; i++) await c.exec(burst);
for (let k = 0; k < a.n; k++) {
  let t = now(); await c.exec(burst); rows["sh: 10 × true in background, back to back"]!.push(now() - t);
  t = now(); await c.exec(empty); rows["sh -c : (the exec alone)"]!.push(now() - t);
  await new Promise((r) => setTimeout(r, 300));
  t = now(); await c.exec(burst); rows["same after 300 ms gap"]!.push(now() - t);
}
console.log(`load ${loadavg()[0]}`);
report("a burst of 10 processes inside the sandbox", "ms", Object.entries(rows).map(([name, samples]) => ({ name, samples })));
c.close(); process.exit(0);
