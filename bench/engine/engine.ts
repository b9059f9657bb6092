// Engine benchmarks (gvisor): p50/p95/p99 over >= 30 samples per metric, with the in-sandbox
// fork+exec of `true` measured in the same run as the floor. Runs a real runsc engine with the
// real agent inside a stand-in host netns (same environment as the conformance suite).
//
//   node --conditions=source --import tsx bench/engine/engine.ts [--n 30] [--quick]
import type { AgentClient } from "@bhatti/agent-client";
import { createGvisorEngine } from "@bhatti/service-vmm/gvisor";
import type { Engine, SandboxInfo } from "@bhatti/service-vmm/engine";
import { testSpec } from "@bhatti/test/engine-conformance/engine-factory";
import { createGvisorTestEnv } from "@bhatti/test/engine-conformance/gvisor-factory";
import { createAgentClient } from "@bhatti/agent-client";

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const N = arg("n", 30);
const COLD_N = arg("cold-n", N);

interface Stat {
  name: string;
  n: number;
  p50: number;
  p95: number;
  p99: number;
  mean: number;
  note: string;
}
const results: Stat[] = [];
const pct = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
function record(name: string, samples: number[], note = ""): Stat {
  const s = [...samples].sort((a, b) => a - b);
  const stat = {
    name,
    n: s.length,
    p50: pct(s, 0.5),
    p95: pct(s, 0.95),
    p99: pct(s, 0.99),
    mean: s.reduce((a, b) => a + b, 0) / s.length,
    note,
  };
  results.push(stat);
  console.error(
    `${name.padEnd(34)} n=${String(stat.n).padStart(3)} p50=${stat.p50.toFixed(2)} p95=${stat.p95.toFixed(2)} p99=${stat.p99.toFixed(2)} ms ${note}`,
  );
  return stat;
}
const time = async (fn: () => Promise<unknown>) => {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
};

const env = await createGvisorTestEnv();
const engines: Engine[] = [];
const mk = (over: Partial<Parameters<typeof createGvisorEngine>[0]> = {}) => {
  const e = createGvisorEngine({ ...env.options, ...over });
  engines.push(e);
  return e;
};
const agent = async (engine: Engine, id: string): Promise<AgentClient> => {
  const ep = engine.agentEndpoint(id);
  return createAgentClient({
    control: await env.options.dialer.endpoint(ep.host, ep.controlPort),
    forward: await env.options.dialer.endpoint(ep.host, ep.forwardPort),
    token: ep.token,
    pool: false,
  });
};
const execOnce = async (engine: Engine, id: string, argv: string[]) => {
  const c = await agent(engine, id);
  try {
    const r = await c.exec(argv);
    if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} exited ${r.exitCode}: ${r.stderr}`);
    return r;
  } finally {
    c.close();
  }
};

/** Per fork+exec of /bin/true inside the sandbox: (loop of 20) - (empty loop), / 20. */
async function floor(engine: Engine, id: string, label: string): Promise<Stat> {
  const c = await agent(engine, id);
  const samples: number[] = [];
  try {
    for (let i = 0; i < N; i++) {
      const empty = await time(() => c.exec(["sh", "-c", "i=0; while [ $i -lt 20 ]; do i=$((i+1)); done"]));
      const loop = await time(() =>
        c.exec(["sh", "-c", "i=0; while [ $i -lt 20 ]; do /bin/true; i=$((i+1)); done"]),
      );
      samples.push((loop - empty) / 20);
    }
  } finally {
    c.close();
  }
  return record(label, samples, "in-sandbox fork+exec of /bin/true");
}

try {
  const engine = mk();
  const image = "busybox";

  // ---- floor and exec ----
  const main = await engine.create(testSpec(image, { name: "bench-main" }));
  const fl = await floor(engine, main.id, `floor (${env.options.platform})`);
  {
    const c = await agent(engine, main.id);
    const samples: number[] = [];
    for (let i = 0; i < Math.max(N, 100); i++) samples.push(await time(() => c.exec(["true"])));
    c.close();
    const s = record("exec true (agent, spare conn off)", samples);
    console.error(`  overhead above floor p50: ${(s.p50 - fl.p50).toFixed(2)} ms`);
  }

  // ---- create until first exec, destroy ----
  {
    const create: number[] = [];
    const destroy: number[] = [];
    const phases: number[][] = [];
    const off = engine.onEvent((e) => {
      if (e.kind === "sandbox.created")
        phases.push([...e.detail.matchAll(/(\d+) ms/g)].map((m) => Number(m[1])));
    });
    for (let i = 0; i < N; i++) {
      let info: SandboxInfo | undefined;
      create.push(
        await time(async () => {
          info = await engine.create(testSpec(image, { name: `bench-c${i}` }));
          await execOnce(engine, info.id, ["true"]);
        }),
      );
      const id = (info as SandboxInfo).id;
      destroy.push(await time(() => engine.destroy(id)));
    }
    off();
    record("create until first exec", create, "target <= 400 ms p50");
    for (const [i, phase] of ["prepare", "runsc run", "agent ready"].entries()) {
      record(
        `  create phase: ${phase}`,
        phases.map((p) => p[i] ?? 0),
      );
    }
    record("destroy", destroy);
  }

  // ---- warm: freeze vs runsc pause ----
  for (const method of ["freeze", "runsc"] as const) {
    const e = method === "freeze" ? engine : mk({ warmMethod: "runsc" });
    const sb = method === "freeze" ? main : await e.create(testSpec(image, { name: "bench-runsc-pause" }));
    const pause: number[] = [];
    const resume: number[] = [];
    const warmExec: number[] = [];
    const c = await agent(e, sb.id);
    for (let i = 0; i < N; i++) {
      pause.push(await time(() => e.pause(sb.id)));
      resume.push(await time(() => e.resume(sb.id)));
      await e.pause(sb.id);
      warmExec.push(
        await time(async () => {
          await e.ensureHot(sb.id);
          await c.exec(["true"]);
        }),
      );
    }
    c.close();
    record(`pause (${method})`, pause);
    record(`resume (${method})`, resume);
    record(`warm resume + exec (${method})`, warmExec, "target <= 5 ms p50");
    if (method === "runsc") await e.destroy(sb.id);
  }

  // ---- cold: a sandbox that has run Node and holds 100 MiB in tmpfs ----
  {
    const sb = await engine.create(testSpec(image, { name: "bench-cold", memoryMb: 1024 }));
    await execOnce(engine, sb.id, [
      "sh",
      "-c",
      "head -c 104857600 /dev/urandom > /dev/shm/blob && /.bhatti/lib/ld-linux-x86-64.so.2 --library-path /.bhatti/lib /.bhatti/node -e 'const a=[]; for (let i=0;i<1e5;i++) a.push({i}); console.log(a.length)'",
    ]);
    const stop: number[] = [];
    const restore: number[] = [];
    let bytes = 0;
    for (let i = 0; i < COLD_N; i++) {
      stop.push(await time(() => engine.stop(sb.id)));
      bytes = Number(engine.status(sb.id)?.engineDetails["checkpoint_bytes"] ?? 0);
      restore.push(
        await time(async () => {
          await engine.start(sb.id);
          await execOnce(engine, sb.id, ["true"]);
        }),
      );
    }
    const r = await execOnce(engine, sb.id, ["sh", "-c", "wc -c < /dev/shm/blob"]);
    if (r.stdout.toString().trim() !== "104857600") throw new Error("the 100 MiB tmpfs file did not survive");
    record("cold snapshot (stop), 100 MiB tmpfs", stop, `checkpoint ${(bytes / 1048576).toFixed(1)} MiB`);
    record("restore + exec, 100 MiB tmpfs", restore, "target <= 500 ms p50");
    await engine.destroy(sb.id);
  }

  // ---- memory per idle sandbox ----
  {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++)
      ids.push((await engine.create(testSpec(image, { name: `bench-idle${i}` }))).id);
    await new Promise((r) => setTimeout(r, 3000));
    const mib = [];
    for (const id of ids) mib.push((await engine.stats(id)).memoryBytes / 1048576);
    console.error(`memory per idle sandbox (cgroup usage): ${mib.map((m) => m.toFixed(1)).join(", ")} MiB`);
    results.push({
      name: "memory per idle sandbox (MiB)",
      n: mib.length,
      p50: pct(
        [...mib].sort((a, b) => a - b),
        0.5,
      ),
      p95: Math.max(...mib),
      p99: Math.max(...mib),
      mean: mib.reduce((a, b) => a + b, 0) / mib.length,
      note: "v1 memory.usage_in_bytes: sentry+gofer+guest incl. page cache",
    });
    for (const id of ids) await engine.destroy(id);
  }

  // ---- the other platform's floor, for the platform choice ----
  if (!process.argv.includes("--quick")) {
    const other = env.options.platform === "ptrace" ? "systrap" : "ptrace";
    const e = mk({ platform: other });
    const sb = await e.create(testSpec(image, { name: "bench-platform" }));
    await floor(e, sb.id, `floor (${other})`);
    await e.destroy(sb.id);
  }

  await engine.destroy(main.id);
  console.log(
    JSON.stringify({ at: new Date().toISOString(), platform: env.options.platform, results }, null, 2),
  );
} finally {
  for (const e of engines) for (const s of e.list()) await e.destroy(s.id).catch(() => undefined);
  await env.teardown();
}
