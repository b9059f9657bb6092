// CPU time per Connect unary call on each side (client process, server process), for the
// product's client/server over HTTP/1.1 and HTTP/2 and a bare HTTP/1.1 request: where a call's
// cost goes when the machine is not idle (wall time there is mostly waiting for a CPU).
//   node --conditions=source --import tsx bench/h1rpc/cpu-per-call.ts [calls]
import { fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import * as http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { StoreService } from "@bhatti/proto";
import { createLogger, createServiceClient, processHealth, startConnectServer } from "@bhatti/runtime";

if (process.argv[2] === "--server") {
  const dir = process.argv[3] ?? "";
  for (const httpVersion of ["1.1", "2"] as const) {
    await startConnectServer({
      socketPath: join(dir, `s-${httpVersion}.sock`),
      httpVersion,
      logger: createLogger({ service: "bench", level: "error" }),
      routes: (r) => r.service(StoreService, { health: () => ({ health: processHealth("store") }) }),
    });
  }
  // An 8 KiB answer (a list's size): above connect's 1 KiB threshold for compressing a response.
  await startConnectServer({
    socketPath: join(dir, "big.sock"),
    logger: createLogger({ service: "bench", level: "error" }),
    routes: (r) =>
      r.service(StoreService, {
        health: () => ({ health: processHealth("store", [], { blob: "sandbox-0123456789 ".repeat(430) }) }),
      }),
  });
  const bare = http.createServer((_req, res) => res.end('{"ok":true}'));
  await new Promise<void>((ok) => bare.listen(join(dir, "bare.sock"), ok));
  process.on("message", () => process.send?.(process.cpuUsage()));
  process.send?.("ready");
} else {
  const calls = Number(process.argv[2] ?? 3000);
  const dir = mkdtempSync(join(tmpdir(), "bhatti-test-cpu-"));
  const server = fork(fileURLToPath(import.meta.url), ["--server", dir], {
    execArgv: ["--conditions=source", "--import", "tsx"],
  });
  const serverCpu = () =>
    new Promise<NodeJS.CpuUsage>((ok) => {
      server.once("message", (m) => ok(m as NodeJS.CpuUsage));
      server.send("cpu");
    });
  try {
    await new Promise((ok) => server.once("message", ok));
    const h1 = createServiceClient(StoreService, join(dir, "s-1.1.sock"), { httpVersion: "1.1" });
    const h2 = createServiceClient(StoreService, join(dir, "s-2.sock"), { httpVersion: "2" });
    const big = createServiceClient(StoreService, join(dir, "big.sock"));
    const agent = new http.Agent({ keepAlive: true });
    const bare = () =>
      new Promise<void>((resolve, reject) => {
        const req = http.request(
          { socketPath: join(dir, "bare.sock"), agent, method: "POST", path: "/" },
          (res) => {
            res.resume();
            res.on("end", () => resolve());
          },
        );
        req.on("error", reject);
        req.end("{}");
      });
    const variants: [string, () => Promise<unknown>][] = [
      ["bare HTTP/1.1 request", bare],
      ["@bhatti/runtime, HTTP/1.1", () => h1.client.health({})],
      ["@bhatti/runtime, HTTP/2", () => h2.client.health({})],
      ["@bhatti/runtime, 8 KiB answer", () => big.client.health({})],
    ];
    for (const [, call] of variants) for (let i = 0; i < 500; i++) await call();
    console.log("µs per call (mean):      wall   client CPU   server CPU");
    for (let rep = 0; rep < 2; rep++) {
      for (const [name, call] of variants) {
        const s0 = await serverCpu();
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        for (let i = 0; i < calls; i++) await call();
        const wall = ((performance.now() - t0) * 1000) / calls;
        const c = process.cpuUsage(c0);
        const s1 = await serverCpu();
        const cpu = (u: NodeJS.CpuUsage) => ((u.user + u.system) / calls).toFixed(0).padStart(10);
        const sd = { user: s1.user - s0.user, system: s1.system - s0.system };
        console.log(`${name.padEnd(26)} ${wall.toFixed(0).padStart(6)} ${cpu(c)}   ${cpu(sd)}`);
      }
    }
    h1.close();
    h2.close();
    big.close();
    agent.destroy();
  } finally {
    server.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}
