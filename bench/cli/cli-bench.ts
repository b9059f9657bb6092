// `bhatti` start-up against the floor Node allows, on the whole product (`bhatti serve`,
// gvisor, busybox image, one sandbox) in a stand-in netns with test names. Every case is a
// fresh process started the same way (nsenter into the netns, then `node …`), interleaved.
//
// Targets (issue 13), p50 of one run:
//   bhatti version --offline       <= 1.15 x node -e 0
//   bhatti list / exec NAME -- true <= node -e 0 + the gateway call itself + 30 ms
// "The gateway call itself" is measured in the same run by rest-call.mjs: a node:http-only
// process making the equivalent REST call and timing just that call.
//
// BENCH_BEFORE_CLI=NODE:BUNDLE adds the same three commands run by another node and CLI bundle
// (e.g. /usr/bin/node:/path/to/node20-checkout/cli/dist/bhatti.mjs), interleaved, for before/after.
//
//   node --conditions=source --import tsx bench/cli/cli-bench.ts [--runs 20]
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startProduct, waitForSandbox } from "@bhatti/test/thermal/product-harness";
import { percentiles } from "../foundation/stats.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const argRuns = process.argv.indexOf("--runs");
const runs = argRuns > 0 ? Number(process.argv[argRuns + 1]) : Number(process.env["BENCH_RUNS"] ?? 20);
const bhatti = join(root, "cli/dist/bhatti.mjs");
const restCall = join(root, "bench/cli/rest-call.mjs");

interface Timed {
  ms: number;
  stdout: string;
}

const product = await startProduct({ flags: ["--log-level=warn", "--thermal-warm-after=1h"] });
// The CLI's caches (compile cache, sandbox names) go to a temp home, never the real one.
const home = mkdtempSync(join(tmpdir(), "bhatti-test-clibench-"));
try {
  const created = await product.http("POST", "/sandboxes", { body: { name: "bench" } });
  if (created.status !== 201) throw new Error(`create: ${created.status} ${created.text}`);
  const id = created.json<{ id: string }>().id;
  await waitForSandbox(product, id, (s) => s.status === "running");

  const env = {
    ...process.env,
    HOME: home,
    XDG_CACHE_HOME: join(home, ".cache"),
    BHATTI_CLIENT_CONFIG: join(product.env.stateDir, "client-user.yaml"),
    BHATTI_TOKEN: product.userKey,
  };
  const url = `http://127.0.0.1:${product.port}`;
  const run = (args: readonly string[], node = process.execPath): Promise<Timed> =>
    new Promise((resolve, reject) => {
      const t = process.hrtime.bigint();
      const child = spawn("nsenter", [`--net=${product.env.hostNetnsPath}`, "--", node, ...args], {
        env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.once("error", reject);
      child.once("close", (code) => {
        const ms = Number(process.hrtime.bigint() - t) / 1e6;
        if (code !== 0) reject(new Error(`${args.join(" ")} exited ${code}: ${stderr}`));
        else resolve({ ms, stdout });
      });
    });

  const cases = [
    { name: "node -e 0", args: ["-e", "0"] },
    // --offline: the start-up floor; plain `bhatti version` also runs the update check (git fetch).
    { name: "bhatti version --offline", args: [bhatti, "version", "--offline"] },
    { name: "node:http GET /sandboxes", args: [restCall, url, "GET", "/sandboxes"], call: true },
    { name: "bhatti list", args: [bhatti, "list"] },
    {
      name: "node:http POST …/exec true",
      args: [restCall, url, "POST", "/sandboxes/bench/exec", JSON.stringify({ cmd: ["true"] })],
      call: true,
    },
    { name: "bhatti exec bench -- true", args: [bhatti, "exec", "bench", "--", "true"] },
  ] as const;
  const [beforeNode, beforeCli] = (process.env["BENCH_BEFORE_CLI"] ?? "").split(":");
  const before =
    beforeNode !== undefined && beforeCli !== undefined
      ? [
          { name: "before: bhatti version", args: [beforeCli, "version"] },
          { name: "before: bhatti list", args: [beforeCli, "list"] },
          { name: "before: bhatti exec … true", args: [beforeCli, "exec", "bench", "--", "true"] },
        ]
      : [];
  const beforeTotal = before.map(() => [] as number[]);
  for (const c of before) for (let i = 0; i < 3; i++) await run(c.args, beforeNode);
  const total = cases.map(() => [] as number[]);
  const call = cases.map(() => [] as number[]);
  // Warm-up: page cache, the compile cache, the sandbox's agent connection.
  for (const c of cases) for (let i = 0; i < 3; i++) await run(c.args);
  for (let i = 0; i < runs; i++) {
    for (const [j, c] of cases.entries()) {
      const r = await run(c.args);
      total[j]?.push(r.ms);
      if ("call" in c) call[j]?.push(Number(r.stdout.trim()));
    }
    for (const [j, c] of before.entries()) beforeTotal[j]?.push((await run(c.args, beforeNode)).ms);
  }

  const p = (j: number) => percentiles(total[j] ?? []);
  const fmt = (v: number) => v.toFixed(1).padStart(8);
  process.stdout.write(
    `\nCLI (node ${process.version}, ${runs} runs, process spawn to exit, ms)\n${"".padEnd(32)}${"p50".padStart(8)}${"p95".padStart(8)}${"p99".padStart(8)}\n`,
  );
  for (const [j, c] of cases.entries()) {
    const s = p(j);
    process.stdout.write(`${c.name.padEnd(32)}${fmt(s.p50)}${fmt(s.p95)}${fmt(s.p99)}\n`);
    if ("call" in c) {
      const k = percentiles(call[j] ?? []);
      process.stdout.write(
        `${"  of which the call itself".padEnd(32)}${fmt(k.p50)}${fmt(k.p95)}${fmt(k.p99)}\n`,
      );
    }
  }
  for (const [j, c] of before.entries()) {
    const s = percentiles(beforeTotal[j] ?? []);
    process.stdout.write(`${c.name.padEnd(32)}${fmt(s.p50)}${fmt(s.p95)}${fmt(s.p99)}  (${beforeNode})\n`);
  }
  const floor = p(0).p50;
  const verdict = (ok: boolean) => (ok ? "ok" : "MISSED");
  const version = p(1).p50 / floor;
  process.stdout.write(
    `\nbhatti version / node -e 0 = ${version.toFixed(2)}x (target <= 1.15x) ${verdict(version <= 1.15)}\n`,
  );
  for (const [cliIdx, callIdx] of [
    [3, 2],
    [5, 4],
  ] as const) {
    const budget = floor + percentiles(call[callIdx] ?? []).p50 + 30;
    const got = p(cliIdx).p50;
    process.stdout.write(
      `${cases[cliIdx].name} = ${got.toFixed(1)} ms; budget node -e 0 + call + 30 = ${budget.toFixed(1)} ms (${(got - budget).toFixed(1)} ms ${got <= budget ? "under" : "over"}) ${verdict(got <= budget)}; ${(got / p(1).p50).toFixed(2)}x bhatti version\n`,
    );
  }
} finally {
  rmSync(home, { recursive: true, force: true });
  await product.dispose();
}
