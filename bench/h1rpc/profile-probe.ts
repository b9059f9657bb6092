// Profiles one Connect unary call path (the product's @bhatti/runtime client and server, HTTP/1.1)
// with the server in another process: node --cpu-prof on both sides.
//   node --conditions=source --import tsx bench/h1rpc/profile-probe.ts [calls]
import { fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { StoreService } from "@bhatti/proto";
import { createLogger, createServiceClient, processHealth, startConnectServer } from "@bhatti/runtime";

if (process.argv[2] === "--server") {
  await startConnectServer({
    socketPath: process.argv[3] ?? "",
    logger: createLogger({ service: "bench", level: "error" }),
    routes: (r) => r.service(StoreService, { health: () => ({ health: processHealth("store") }) }),
  });
  process.send?.("ready");
  process.on("message", () => process.exit(0));
} else {
  const calls = Number(process.argv[2] ?? 5000);
  const dir = mkdtempSync(join(tmpdir(), "bhatti-test-prof-"));
  const sock = join(dir, "s.sock");
  const server = fork(fileURLToPath(import.meta.url), ["--server", sock], {
    execArgv: [
      "--conditions=source",
      "--import",
      "tsx",
      ...process.execArgv.filter((a) => a.startsWith("--cpu-prof")),
    ],
  });
  try {
    await new Promise((ok) => server.once("message", ok));
    const c = createServiceClient(StoreService, sock);
    for (let i = 0; i < 500; i++) await c.client.health({});
    const t = performance.now();
    for (let i = 0; i < calls; i++) await c.client.health({});
    console.log(
      `${(((performance.now() - t) / calls) * 1000).toFixed(0)} µs per call (mean, ${calls} calls)`,
    );
    c.close();
    server.send("exit");
    await new Promise((ok) => server.once("exit", ok));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
