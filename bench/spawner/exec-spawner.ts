// The agent's resident spawner against Node's own spawn, inside one gVisor sandbox, same run:
//   - agent-direct exec `true` through the package's agent (spawner on) and through a second
//     agent started in the same sandbox with BHATTI_AGENT_SPAWNER=off (every exec forks Node),
//     interleaved one by one;
//   - the in-sandbox fork+exec floor: (sh loop of 20 × /bin/true − empty sh loop) ÷ 20, timed
//     from the host as the difference of two execs;
//   - 10 concurrent execs of `true` per batch, both agents, interleaved batch by batch;
//   - a request without a process (stat /) on the same client: the agent's own round trip.
//
//   node --conditions=source --import tsx bench/spawner/exec-spawner.ts [--n 60] [--batches 20] [--second pool]
//
// --second pool: the second agent keeps the spawner and turns on its pool of pre-connected
// stdio connections (BHATTI_AGENT_SPAWNER_POOL=12; the package's default is off: three
// connect-backs per exec), so the rows compare the two paths, same sandbox, same package.
// --second same: the second agent is configured as the first (with --second-flags, the A/B of
// a Node flag). --second-flags "F1 F2": extra Node flags for the second agent (it always gets
// the package's AGENT_NODE_FLAGS first, as the engine starts the first one).
// --second-env NAME=VALUE (repeatable): extra environment for the second agent.
import { loadavg } from "node:os";
import { AGENT_NODE_FLAGS, type AgentClient, createAgentClient } from "@bhatti/agent-client";
import { createGvisorEngine } from "@bhatti/service-vmm/gvisor";
import { testSpec } from "@bhatti/test/engine-conformance/engine-factory";
import { createGvisorTestEnv } from "@bhatti/test/engine-conformance/gvisor-factory";
import { report } from "../foundation/stats.js";

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const N = arg("--n", 60);
const BATCHES = arg("--batches", 20);
const secondIndex = process.argv.indexOf("--second");
const SECOND = secondIndex >= 0 ? process.argv[secondIndex + 1] : "node";
const flagsIndex = process.argv.indexOf("--second-flags");
const SECOND_FLAGS = flagsIndex >= 0 ? (process.argv[flagsIndex + 1] ?? "").split(" ").filter(Boolean) : [];
const POOL = SECOND === "pool";
/** Whether the second agent's commands are the spawner's children. */
const SECOND_SPAWNER = SECOND !== "node";
const EXTRA_ENV: Record<string, string> = {};
process.argv.forEach((a, i) => {
  const v = process.argv[i + 1];
  if (a === "--second-env" && v !== undefined && v.includes("=")) {
    EXTRA_ENV[v.slice(0, v.indexOf("="))] = v.slice(v.indexOf("=") + 1);
  }
});
const SECOND_ENV: Record<string, string> = {
  ...(SECOND === "pool"
    ? { BHATTI_AGENT_SPAWNER_POOL: "12" }
    : SECOND === "same"
      ? {}
      : { BHATTI_AGENT_SPAWNER: "off" }),
  ...EXTRA_ENV,
};
const FIRST_LABEL = POOL
  ? "resident spawner, connect-back"
  : SECOND === "same"
    ? "package agent"
    : "resident spawner";
const SECOND_LABEL =
  (POOL ? "resident spawner, stdio pool" : SECOND === "same" ? "second agent" : "Node spawn") +
  (SECOND_FLAGS.length > 0 ? ` ${SECOND_FLAGS.join(" ")}` : "") +
  Object.entries(EXTRA_ENV)
    .map(([k, v]) => ` ${k}=${v}`)
    .join("");
const SECOND_CONTROL = 7100;
const SECOND_FORWARD = 7101;
const SECOND_TOKEN = "bench-second-agent-token-0123456789";

const now = () => Number(process.hrtime.bigint()) / 1e6;
const timed = async (fn: () => Promise<unknown>) => {
  const t = now();
  await fn();
  return now() - t;
};
const execTrue = async (client: AgentClient) => {
  const r = await client.exec(["true"]);
  if (r.exitCode !== 0) throw new Error(`true exited ${r.exitCode}`);
};

const env = await createGvisorTestEnv();
const engine = createGvisorEngine(env.options);
const clients: AgentClient[] = [];
try {
  const sb = await engine.create(testSpec("busybox", { name: "bench-spawner", memoryMb: 1024 }));
  const ep = engine.agentEndpoint(sb.id);
  const dial = (control: number, forward: number, token: string) =>
    Promise.all([
      env.options.dialer.endpoint(ep.host, control),
      env.options.dialer.endpoint(ep.host, forward),
    ]).then(([c, f]) => {
      const client = createAgentClient({ control: c, forward: f, token });
      clients.push(client);
      return client;
    });
  const withSpawner = await dial(ep.controlPort, ep.forwardPort, ep.token);

  // Commands of the package's agent must be the spawner's children (else this compares nothing).
  for (let i = 0; ; i++) {
    const r = await withSpawner.exec(["sh", "-c", "cat /proc/$PPID/comm"]);
    if (r.stdout.toString().trim() === "spawner") break;
    if (i > 100) throw new Error(`no spawner in the sandbox: parent is ${r.stdout.toString()}`);
    await new Promise((r) => setTimeout(r, 50));
  }

  // The second agent: same package, same sandbox, spawner off.
  await withSpawner.exec(
    ["sh", "-c", `echo ${SECOND_TOKEN} > /tmp/bench-token; chmod 600 /tmp/bench-token`],
    {
      root: true,
    },
  );
  await withSpawner.execDetached(
    [
      "/.bhatti/lib/ld-linux-x86-64.so.2",
      "--library-path",
      "/.bhatti/lib",
      "/.bhatti/node",
      ...AGENT_NODE_FLAGS,
      ...SECOND_FLAGS,
      "/.bhatti/agent.mjs",
      "--listen",
      `0.0.0.0:${SECOND_CONTROL}`,
      "--forward-listen",
      `0.0.0.0:${SECOND_FORWARD}`,
      "--token-file",
      "/tmp/bench-token",
      "--user",
      "1000",
    ],
    { root: true, env: SECOND_ENV, outputFile: "/tmp/bench-second-agent.log" },
  );
  let withNode: AgentClient | undefined;
  for (let i = 0; withNode === undefined; i++) {
    try {
      const client = await dial(SECOND_CONTROL, SECOND_FORWARD, SECOND_TOKEN);
      const r = await client.exec(["sh", "-c", "cat /proc/$PPID/comm"]);
      if ((r.stdout.toString().trim() === "spawner") !== SECOND_SPAWNER)
        throw new Error("second agent: wrong kind");
      withNode = client;
    } catch (err) {
      if (i > 200) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  // Warm-up: both paths, a few times.
  for (let i = 0; i < 5; i++) {
    await execTrue(withSpawner);
    await execTrue(withNode);
  }

  const loadBefore = loadavg();
  const spawnerRow: number[] = [];
  const nodeRow: number[] = [];
  const floor: number[] = [];
  // The same round trip without a process (stat /): what is left of an exec beyond the agent's
  // request handling is the start of the command.
  const noProcess: number[] = [];
  const loop = (body: string) => `i=0; while [ $i -lt 20 ]; do ${body} i=$((i+1)); done`;
  for (let k = 0; k < N; k++) {
    // Alternate which goes first, so neither always follows the other.
    const pair: [number[], AgentClient][] =
      k % 2 === 0
        ? [
            [spawnerRow, withSpawner],
            [nodeRow, withNode],
          ]
        : [
            [nodeRow, withNode],
            [spawnerRow, withSpawner],
          ];
    for (const [row, client] of pair) row.push(await timed(() => execTrue(client)));
    noProcess.push(await timed(() => withSpawner.stat("/")));
    const empty = await timed(() => withSpawner.exec(["sh", "-c", loop("")]));
    const full = await timed(() => withSpawner.exec(["sh", "-c", loop("/bin/true;")]));
    floor.push((full - empty) / 20);
  }
  const batchSpawner: number[] = [];
  const batchNode: number[] = [];
  for (let k = 0; k < BATCHES; k++) {
    const order: [number[], AgentClient][] =
      k % 2 === 0
        ? [
            [batchSpawner, withSpawner],
            [batchNode, withNode],
          ]
        : [
            [batchNode, withNode],
            [batchSpawner, withSpawner],
          ];
    for (const [row, client] of order) {
      row.push(await timed(() => Promise.all(Array.from({ length: 10 }, () => execTrue(client)))));
    }
  }
  // Back to back: 10 sequential execs on one agent, no gap (as a client looping on exec),
  // alternating agents block by block; each exec is a sample.
  const seqSpawner: number[] = [];
  const seqNode: number[] = [];
  for (let k = 0; k < BATCHES; k++) {
    const order: [number[], AgentClient][] =
      k % 2 === 0
        ? [
            [seqSpawner, withSpawner],
            [seqNode, withNode],
          ]
        : [
            [seqNode, withNode],
            [seqSpawner, withSpawner],
          ];
    for (const [row, client] of order) {
      for (let j = 0; j < 10; j++) row.push(await timed(() => execTrue(client)));
    }
  }
  const loadAfter = loadavg();

  process.stdout.write(
    `gvisor platform ${env.options.platform}; load average before ${loadBefore.map((l) => l.toFixed(2)).join(" ")}, after ${loadAfter.map((l) => l.toFixed(2)).join(" ")}\n`,
  );
  report("agent-direct exec `true`, one sandbox, interleaved", "ms", [
    { name: "in-sandbox fork+exec (floor)", samples: floor },
    { name: `exec true, ${FIRST_LABEL}`, samples: spawnerRow },
    { name: `exec true, ${SECOND_LABEL}`, samples: nodeRow },
    { name: "stat / (same round trip, no process)", samples: noProcess },
  ]);
  report("exec `true` back to back (10 in a row per agent, alternating)", "ms", [
    { name: `exec true, ${FIRST_LABEL}`, samples: seqSpawner },
    { name: `exec true, ${SECOND_LABEL}`, samples: seqNode },
  ]);
  report("10 concurrent execs of `true`, per batch", "ms", [
    { name: `batch, ${FIRST_LABEL}`, samples: batchSpawner },
    { name: `batch, ${SECOND_LABEL}`, samples: batchNode },
  ]);
} finally {
  for (const c of clients) c.close();
  for (const s of engine.list()) await engine.destroy(s.id).catch(() => undefined);
  await env.teardown();
}
