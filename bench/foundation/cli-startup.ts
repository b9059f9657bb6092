// Start-up of `bhatti version` (the esbuild bundle, Connect loaded lazily) against `node -e 0`.
// Target: ≤ 100 ms p50. Run after `npm run build`:
//   node --conditions=source --import tsx bench/foundation/cli-startup.ts
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { report } from "./stats.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const runs = Number(process.env["BENCH_RUNS"] ?? 30);

function time(args: string[]): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
  if (r.status !== 0) throw new Error(`${args.join(" ")} exited ${r.status}`);
  return Number(process.hrtime.bigint() - t) / 1e6;
}

const cases = [
  { name: "node -e 0 (baseline)", args: ["-e", "0"] },
  { name: "bhatti version", args: [join(root, "cli/dist/bhatti.mjs"), "version"] },
  { name: "bhatti --help", args: [join(root, "cli/dist/bhatti.mjs"), "--help"] },
];
const samples = cases.map(() => [] as number[]);
for (const c of cases) for (let i = 0; i < 3; i++) time(c.args);
for (let i = 0; i < runs; i++) for (const [j, c] of cases.entries()) samples[j]?.push(time(c.args));
report(
  "CLI start-up (process spawn to exit)",
  "ms",
  cases.map((c, j) => ({ name: c.name, samples: samples[j] ?? [] })),
);
