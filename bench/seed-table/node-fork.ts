// Why the agent's exec costs several in-sandbox fork+execs: libuv spawns with a plain fork()
// (no CLONE_VM, checked with strace), and under gVisor a fork copies the parent's whole address
// map. This times, inside one gvisor sandbox, `spawnSync("/bin/true")` from Node processes of
// different shapes beside a shell's fork+exec of /bin/true (the floor), all in the same run.
//
//   node --conditions=source --import tsx bench/seed-table/node-fork.ts [--n 20]
import { createAgentClient } from "@bhatti/agent-client";
import { createGvisorEngine } from "@bhatti/service-vmm/gvisor";
import { testSpec } from "@bhatti/test/engine-conformance/engine-factory";
import { createGvisorTestEnv } from "@bhatti/test/engine-conformance/gvisor-factory";
import { report } from "../foundation/stats.js";

const i = process.argv.indexOf("--n");
const N = i >= 0 ? Number(process.argv[i + 1]) : 20;
const NODE = ["/.bhatti/lib/ld-linux-x86-64.so.2", "--library-path", "/.bhatti/lib", "/.bhatti/node"];
// Per iteration: 20 × spawnSync(/bin/true), 20 × an async spawn like the agent's, and (sh loop of 20 × /bin/true) − (empty sh loop); ms each.
const script = (heapMiB: number) => `
const { spawn, spawnSync } = require("node:child_process");
// As the agent starts a command: async, three pipes, its own session, as uid 1000, until "close".
const agentLike = () => new Promise((resolve) => {
  const c = spawn("/bin/true", [], { stdio: ["pipe", "pipe", "pipe"], detached: true, uid: 1000, gid: 1000 });
  c.stdout.on("data", () => {}); c.stderr.on("data", () => {});
  c.once("close", resolve);
});
const keep = []; for (let k = 0; k < ${heapMiB}; k++) keep.push(Buffer.alloc(1 << 20, 1), new Array(20000).fill({ k }));
const t = () => process.hrtime.bigint();
const loop = (body) => "i=0; while [ $i -lt 20 ]; do " + body + " i=$((i+1)); done";
const out = [];
(async () => {
for (let k = 0; k < ${N}; k++) {
  const a = t(); for (let j = 0; j < 20; j++) spawnSync("/bin/true");
  const b = t(); spawnSync("/bin/sh", ["-c", loop("")]);
  const c = t(); spawnSync("/bin/sh", ["-c", loop("/bin/true;")]);
  const d = t();
  for (let j = 0; j < 20; j++) await agentLike();
  const e = t();
  out.push([Number(b - a) / 20e6, Number(d - c - (c - b)) / 20e6, Number(e - d) / 20e6]);
}
console.log(JSON.stringify({ rssMiB: process.memoryUsage().rss / 1048576, out }));
})();`;

const env = await createGvisorTestEnv();
const engine = createGvisorEngine(env.options);
try {
  const sb = await engine.create(testSpec("busybox", { name: "bench-fork", memoryMb: 1024 }));
  const ep = engine.agentEndpoint(sb.id);
  const agent = createAgentClient({
    control: await env.options.dialer.endpoint(ep.host, ep.controlPort),
    forward: await env.options.dialer.endpoint(ep.host, ep.forwardPort),
    token: ep.token,
  });
  const variants: [string, string[], number][] = [
    ["node, default flags", [], 0],
    ["node --single-threaded", ["--single-threaded"], 0],
    ["node --max-semi-space-size=1", ["--max-semi-space-size=1"], 0],
    ["node holding ~40 MiB of heap", [], 20],
  ];
  const rows: { name: string; samples: number[] }[] = [];
  const agentLike: number[] = [];
  const floor: number[] = [];
  for (const [name, flags, heap] of variants) {
    const r = await agent.exec([...NODE, ...flags, "-e", script(heap)]);
    if (r.exitCode !== 0) throw new Error(`${name}: exit ${r.exitCode}: ${r.stderr.toString()}`);
    const res = JSON.parse(r.stdout.toString()) as { rssMiB: number; out: [number, number, number][] };
    if (heap === 0 && flags.length === 0) agentLike.push(...res.out.map((p) => p[2]));
    rows.push({ name: `${name} (rss ${res.rssMiB.toFixed(0)} MiB)`, samples: res.out.map((p) => p[0]) });
    floor.push(...res.out.map((p) => p[1]));
  }
  report(`spawnSync("/bin/true") inside a gvisor sandbox (${env.options.platform}), per spawn`, "ms", [
    { name: "sh fork+exec of /bin/true (floor)", samples: floor },
    ...rows,
    { name: "node, async spawn as the agent does", samples: agentLike },
  ]);
  agent.close();
  await engine.destroy(sb.id);
} finally {
  for (const s of engine.list()) await engine.destroy(s.id).catch(() => undefined);
  await env.teardown();
}
