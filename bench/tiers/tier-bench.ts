// Tier benchmarks (gvisor): per image, create (returns when the agent answers) + the first exec,
// the time until the tier's own service answers (dockerd, the noVNC client, a Playwright page
// title), and a cold cycle (checkpoint size, restore time), with `minimal` measured in the same
// run as the baseline. The tiers must be built (npm run test:tiers builds them).
//
//   node --conditions=source --import tsx bench/tiers/tier-bench.ts [--n 5]
import { existsSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { createAgentClient } from "@bhatti/agent-client";
import type { Engine } from "@bhatti/service-vmm/engine";
import { createGvisorEngine } from "@bhatti/service-vmm/gvisor";
import { testSpec } from "@bhatti/test/engine-conformance/engine-factory";
import { createGvisorTestEnv } from "@bhatti/test/engine-conformance/gvisor-factory";
import { percentiles } from "../foundation/stats.js";

const i = process.argv.indexOf("--n");
const N = i >= 0 ? Number(process.argv[i + 1]) : 5;
const STATE = process.env["BHATTI_TIERS_STATE_DIR"] ?? "/var/lib/bhatti";

// What "the tier's service answers" means, as a command that succeeds once it does.
const SERVICE: Record<string, string | undefined> = {
  minimal: undefined,
  browser: `cd /tmp && node -e 'import("playwright-core").then(async ({ chromium }) => { const b = await chromium.launch(); const p = await b.newPage(); await p.goto("data:text/html,<title>t</title>"); if ((await p.title()) !== "t") process.exit(1); await b.close(); })'`,
  docker: "docker info >/dev/null 2>&1",
  computer: "curl -sf -o /dev/null http://127.0.0.1:6901/vnc.html && vnc-creds >/dev/null",
};
const MEMORY: Record<string, number> = { minimal: 512, browser: 1024, docker: 2048, computer: 2048 };

const env = await createGvisorTestEnv();
const images = ["minimal", "browser", "docker", "computer"].filter((name) => {
  const dir = join(env.stateDir, "images", name);
  if (existsSync(join(dir, "image.json"))) return true;
  const built = join(STATE, "images", name);
  if (!existsSync(join(built, "image.json"))) {
    console.error(`tier-bench: ${name} is not built in ${STATE}; skipped`);
    return false;
  }
  symlinkSync(built, dir);
  return true;
});
const engine: Engine = createGvisorEngine(env.options);

async function sh(id: string, script: string): Promise<number> {
  const ep = engine.agentEndpoint(id);
  const c = createAgentClient({
    control: await env.options.dialer.endpoint(ep.host, ep.controlPort),
    forward: await env.options.dialer.endpoint(ep.host, ep.forwardPort),
    token: ep.token,
    pool: false,
  });
  try {
    return (await c.exec(["sh", "-c", script])).exitCode;
  } finally {
    c.close();
  }
}

const rows: Record<
  string,
  { create: number[]; service: number[]; checkpoint: number[]; restore: number[]; mb: number[] }
> = {};
try {
  for (let n = 0; n < N; n++) {
    for (const image of images) {
      rows[image] ??= { create: [], service: [], checkpoint: [], restore: [], mb: [] };
      const r = rows[image];
      const t0 = performance.now();
      const sb = await engine.create(
        testSpec(image, { name: `bench-${image}`, cpus: 2, memoryMb: MEMORY[image] ?? 512 }),
      );
      if ((await sh(sb.id, "true")) !== 0) throw new Error("first exec failed");
      r.create.push(performance.now() - t0);
      const service = SERVICE[image];
      if (service !== undefined) {
        const deadline = Date.now() + 120_000;
        while ((await sh(sb.id, service)) !== 0) {
          if (Date.now() > deadline) throw new Error(`${image}: the service never answered`);
          await new Promise((ok) => setTimeout(ok, 100));
        }
        r.service.push(performance.now() - t0);
      }
      const t1 = performance.now();
      const cold = await engine.stop(sb.id);
      r.checkpoint.push(performance.now() - t1);
      r.mb.push(Number(cold.engineDetails["checkpoint_bytes"] ?? 0) / 1024 / 1024);
      const t2 = performance.now();
      await engine.start(sb.id);
      if ((await sh(sb.id, "true")) !== 0) throw new Error(`${image}: no exec after restore`);
      r.restore.push(performance.now() - t2);
      await engine.destroy(sb.id);
    }
  }
} finally {
  for (const s of engine.list()) await engine.destroy(s.id).catch(() => undefined);
  await engine.close();
  await env.teardown();
}

const fmt = (v: number) => v.toFixed(0).padStart(8);
const line = (label: string, samples: number[], base: number[] | "baseline" | "none") => {
  const p = percentiles(samples);
  const ratio =
    typeof base === "string"
      ? base === "none"
        ? "-"
        : base
      : `${(p.p50 / percentiles(base).p50).toFixed(2)}×`;
  process.stdout.write(
    `${label.padEnd(40)}${fmt(p.p50)}${fmt(p.p95)}${fmt(p.p99)}  ${String(p.n).padStart(3)}   ${ratio}\n`,
  );
};
process.stdout.write(`\ntiers: gvisor, ${N} samples per image, minimal = baseline (ms unless noted)\n`);
process.stdout.write(
  `${"".padEnd(40)}${"p50".padStart(8)}${"p95".padStart(8)}${"p99".padStart(8)}    n   ×minimal(p50)\n`,
);
const base = rows["minimal"];
for (const image of images) {
  const r = rows[image];
  if (!r) continue;
  const vs = (k: "create" | "checkpoint" | "mb" | "restore") =>
    image === "minimal" || base === undefined ? "baseline" : base[k];
  line(`${image}: create + first exec`, r.create, vs("create"));
  if (r.service.length > 0) line(`${image}: create until the service answers`, r.service, "none");
  line(`${image}: stop (checkpoint)`, r.checkpoint, vs("checkpoint"));
  line(`${image}: checkpoint size (MB)`, r.mb, vs("mb"));
  line(`${image}: start (restore) + first exec`, r.restore, vs("restore"));
}
