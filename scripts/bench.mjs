#!/usr/bin/env node
// Runs every benchmark in bench/ one after another (never in parallel: they would measure each
// other) and writes the combined output to bench/results/<date>.txt as well as stdout.
// Each benchmark prints p50/p95/p99 next to a baseline measured in the same run.
//   npm run bench            all of them
//   npm run bench -- agent   only the named areas
import { spawnSync } from "node:child_process";
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const benches = [
  ["foundation", "bench/foundation/health-rpc.ts"],
  ["foundation", "bench/foundation/cli-startup.ts"],
  ["foundation", "bench/foundation/serve-startup.ts"],
  ["foundation", "bench/foundation/service-processes.ts"],
  ["cli", "bench/cli/cli-bench.ts"],
  ["agent", "bench/agent/agent-bench.ts"],
  ["agent", "bench/agent/sudo-bench.ts"],
  ["store", "bench/store/store-rpc.ts"],
  ["network", "bench/network/attach.ts"],
  ["engine", "bench/engine/engine.ts"],
  ["api", "bench/api/api-bench.ts"],
  ["thermal", "bench/thermal/thermal.ts"],
  ["ratelimit", "bench/ratelimit/flood.ts"],
  ["backpressure", "bench/backpressure/backpressure.ts"],
  ["snapshots", "bench/snapshots/snapshots.ts"],
  ["create", "bench/create/create.ts"],
];
const wanted = process.argv.slice(2);
const out = join(root, "bench/results", `${new Date().toISOString().slice(0, 10)}.txt`);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `# bhatti benchmarks, ${new Date().toISOString()}, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}\n`);

const build = spawnSync(process.execPath, [join(root, "scripts/build.mjs")], { stdio: "inherit" });
if (build.status !== 0) process.exit(1);
let failed = 0;
for (const [area, file] of benches) {
  if (wanted.length > 0 && !wanted.includes(area)) continue;
  const header = `\n=== ${file} (load average ${loadavg()[0].toFixed(2)})\n`;
  process.stdout.write(header);
  appendFileSync(out, header);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ["--conditions=source", "--import", "tsx", file], {
    cwd: root,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 64 * 1024 * 1024,
  });
  const text = `${r.stdout}${r.status === 0 ? "" : r.stderr}(exit ${r.status}, ${((Date.now() - t0) / 1000).toFixed(0)} s)\n`;
  process.stdout.write(text);
  appendFileSync(out, text);
  if (r.status !== 0) failed++;
}
process.stdout.write(`\nresults written to ${out}\n`);
process.exit(failed === 0 ? 0 : 1);
