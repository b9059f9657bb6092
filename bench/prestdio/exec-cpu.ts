// Where an exec's CPU goes in a gVisor sandbox: N sequential execs of `true` (agent-direct),
// with the CPU time of the sandbox's host processes (runsc sandbox, gofer: every guest
// syscall is handled there) and, as gVisor accounts it, of the guest's agent and spawner
// (utime+stime from the guest's /proc), read before and after. Also the same for N requests
// that start no process (stat /), to split the agent's round trip from the start.
//
//   node --conditions=source --import tsx bench/prestdio/exec-cpu.ts [--n 200]
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { createAgentClient } from "@bhatti/agent-client";
import { createGvisorEngine } from "@bhatti/service-vmm/gvisor";
import { testSpec } from "@bhatti/test/engine-conformance/engine-factory";
import { createGvisorTestEnv } from "@bhatti/test/engine-conformance/gvisor-factory";

const i = process.argv.indexOf("--n");
const N = i >= 0 ? Number(process.argv[i + 1]) : 200;
const TICK_MS = 1000 / Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim());

const env = await createGvisorTestEnv();
const engine = createGvisorEngine(env.options);
try {
  const sb = await engine.create(testSpec("busybox", { name: "bench-exec-cpu", memoryMb: 1024 }));
  const ep = engine.agentEndpoint(sb.id);
  const [c, f] = await Promise.all([
    env.options.dialer.endpoint(ep.host, ep.controlPort),
    env.options.dialer.endpoint(ep.host, ep.forwardPort),
  ]);
  const client = createAgentClient({ control: c, forward: f, token: ep.token });
  /** Host pids of the sandbox's runsc processes (their command line names the sandbox). */
  const hostPids = () =>
    execFileSync("ps", ["-eo", "pid=,args="])
      .toString()
      .split("\n")
      .filter((l) => l.includes("runsc") && l.includes(sb.id))
      .map((l) => Number(l.trim().split(" ")[0]));
  const hostCpu = (pids: number[]) =>
    pids.reduce((sum, pid) => {
      try {
        const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
        // utime, stime, cutime, cstime (fields 14-17; index 11-14 after the comm)
        return sum + [11, 12, 13, 14].reduce((s, k) => s + Number(fields[k]), 0) * TICK_MS;
      } catch {
        return sum;
      }
    }, 0);
  const guest = async () => {
    const r = await client.exec(
      [
        "sh",
        "-c",
        'for p in $(pgrep -f agent.mjs | head -1) $(pgrep -x spawner); do cut -d" " -f14,15 /proc/$p/stat; done',
      ],
      { root: true },
    );
    return r.stdout
      .toString()
      .trim()
      .split("\n")
      .map((l) => l.split(" ").reduce((s, v) => s + Number(v), 0) * 10);
  };
  for (let k = 0; k < 20; k++) await client.exec(["true"]);
  const pids = hostPids();
  if (pids.length === 0) throw new Error("no runsc processes found for the sandbox");
  const measure = async (label: string, op: () => Promise<unknown>) => {
    const g0 = await guest();
    const h0 = hostCpu(pids);
    const t0 = performance.now();
    for (let k = 0; k < N; k++) await op();
    const wall = performance.now() - t0;
    const h1 = hostCpu(pids);
    const g1 = await guest();
    const per = (x: number) => (x / N).toFixed(2);
    process.stdout.write(
      `${label.padEnd(22)} wall ${per(wall)} ms, sandbox host CPU ${per(h1 - h0)} ms, guest agent ${per(g1[0]! - g0[0]!)} ms, guest spawner ${per((g1[1] ?? 0) - (g0[1] ?? 0))} ms (per op, n=${N})\n`,
    );
  };
  const load = loadavg();
  process.stdout.write(
    `load average ${load.map((l) => l.toFixed(2)).join(" ")}; guest times have 10 ms ticks\n`,
  );
  await measure("exec true", () => client.exec(["true"]));
  await measure("stat / (no process)", () => client.stat("/"));
  client.close();
} finally {
  for (const s of engine.list()) await engine.destroy(s.id).catch(() => undefined);
  await env.teardown();
}
