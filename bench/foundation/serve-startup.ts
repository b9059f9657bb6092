// `bhatti serve` from spawn until all five processes are healthy (the supervisor's
// "all processes healthy" line), against one store process alone until it answers Health
// (baseline). Each run uses fresh temp dirs and a free port. Run after `npm run build`:
//   node --conditions=source --import tsx bench/foundation/serve-startup.ts
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { StoreService } from "@bhatti/proto";
import { createServiceClient } from "@bhatti/runtime";
import { report } from "./stats.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const runs = Number(process.env["BENCH_RUNS"] ?? 5);

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((ok) => s.listen(0, "127.0.0.1", ok));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((ok) => s.close(() => ok()));
  return port;
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((ok) => {
    if (child.exitCode !== null) return ok();
    child.once("exit", () => ok());
    child.kill("SIGTERM");
  });
}

async function serveOnce(): Promise<number> {
  const dir = mkdtempSync("/tmp/bhatti-bench-");
  const t = process.hrtime.bigint();
  const child = spawn(
    process.execPath,
    [
      join(root, "cli/dist/bhatti.mjs"),
      "serve",
      `--socket-dir=${join(dir, "s")}`,
      `--state-dir=${join(dir, "state")}`,
      `--listen=127.0.0.1:${await freePort()}`,
      `--client-config-file=${join(dir, "client.yaml")}`,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  try {
    await new Promise<void>((ok, fail) => {
      let text = "";
      child.stderr?.on("data", (d: Buffer) => {
        text += d.toString();
        if (text.includes('"all processes healthy"')) ok();
      });
      child.once("exit", (code) => fail(new Error(`bhatti serve exited ${code}:\n${text}`)));
    });
    return Number(process.hrtime.bigint() - t) / 1e6;
  } finally {
    await stop(child);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function storeOnce(): Promise<number> {
  const dir = mkdtempSync("/tmp/bhatti-bench-");
  const sock = join(dir, "s", "store.sock");
  const t = process.hrtime.bigint();
  const child = spawn(
    process.execPath,
    [
      join(root, "services/store/dist/main.js"),
      "--config=/dev/null",
      `--socket-dir=${join(dir, "s")}`,
      `--state-dir=${join(dir, "state")}`,
      `--client-config-file=${join(dir, "client.yaml")}`,
      "--log-level=error",
    ],
    { stdio: "ignore" },
  );
  const client = createServiceClient(StoreService, sock);
  try {
    for (;;) {
      try {
        await client.client.health({}, { timeoutMs: 500 });
        return Number(process.hrtime.bigint() - t) / 1e6;
      } catch {
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  } finally {
    client.close();
    await stop(child);
    rmSync(dir, { recursive: true, force: true });
  }
}

const store: number[] = [];
const serve: number[] = [];
for (let i = 0; i < runs; i++) {
  store.push(await storeOnce());
  serve.push(await serveOnce());
}
report("Start-up until healthy", "ms", [
  { name: "store alone (baseline)", samples: store },
  { name: "bhatti serve, all five", samples: serve },
]);
