import { connect } from "node:net";
import { loadavg } from "node:os";
import { createAgentClient } from "@bhatti/agent-client";
import { report } from "../foundation/stats.js";

const a = JSON.parse(process.argv[2] ?? "{}") as { host: string; control: number; forward: number; token: string; n: number };
const now = () => Number(process.hrtime.bigint()) / 1e6;
const client = createAgentClient({
  control: { host: a.host, port: a.control },
  forward: { host: a.host, port: a.forward },
  token: a.token,
});
const sock = connect({ host: a.host, port: 7200, noDelay: true });
for (let i = 0; ; i++) {
  try { await new Promise<void>((res, rej) => { sock.once("connect", res); sock.once("error", rej); }); break; }
  catch (e) { if (i > 50) throw e; await new Promise((r) => setTimeout(r, 100)); }
}
const msg = Buffer.alloc(64, 1);
const echo = () => new Promise<void>((res) => { sock.once("data", () => res()); sock.write(msg); });
const rows: Record<string, number[]> = { echo: [], stat: [], exec: [], "exec after 30 ms gap": [], "stat after 30 ms gap": [], floor: [] };
const loop = (body: string) => `i=0; while [ $i -lt 20 ]; do ${body} i=$((i+1)); done`;
for (let i = 0; i < 10; i++) { await echo(); await client.stat("/"); await client.exec(["true"]); }
const load = loadavg()[0];
for (let k = 0; k < a.n; k++) {
  let t = now(); await echo(); rows.echo!.push(now() - t);
  t = now(); await client.stat("/"); rows.stat!.push(now() - t);
  t = now(); await client.exec(["true"]); rows.exec!.push(now() - t);
  await new Promise((r) => setTimeout(r, 30));
  t = now(); await client.exec(["true"]); rows["exec after 30 ms gap"]!.push(now() - t);
  await new Promise((r) => setTimeout(r, 30));
  t = now(); await client.stat("/"); rows["stat after 30 ms gap"]!.push(now() - t);
  if (k % 4 === 0) {
    t = now(); await client.exec(["sh", "-c", loop("")]); const e = now() - t;
    t = now(); await client.exec(["sh", "-c", loop("/bin/true;")]); const f = now() - t;
    rows.floor!.push((f - e) / 20);
  }
}
console.log(`load ${load} -> ${loadavg()[0]}`);
report("agent-direct from inside the netns", "ms", Object.entries(rows).map(([name, samples]) => ({ name, samples })));
sock.destroy(); client.close?.();
process.exit(0);
