// Health RPC latency: Connect over HTTP/2 on a Unix socket (how bhatti processes talk) against
// the same server code on TCP loopback (baseline), the server in a separate process.
// Run: node --conditions=source --import tsx bench/foundation/health-rpc.ts
import { fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { StoreService } from "@bhatti/proto";
import { createLogger, createServiceClient, processHealth, startConnectServer } from "@bhatti/runtime";
import { createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { report } from "./stats.js";

const routes = (r: Parameters<Parameters<typeof connectNodeAdapter>[0]["routes"]>[0]) =>
  r.service(StoreService, { health: () => ({ health: processHealth("store") }) });

if (process.argv[2] === "--server") {
  const socketPath = process.argv[3] ?? "";
  await startConnectServer({
    socketPath,
    routes,
    logger: createLogger({ service: "bench", level: "error" }),
  });
  const tcp = http2.createServer(connectNodeAdapter({ routes }));
  await new Promise<void>((ok) => tcp.listen(0, "127.0.0.1", ok));
  const address = tcp.address() as AddressInfo;
  process.send?.({ port: address.port });
} else {
  const warmup = 300;
  const calls = Number(process.env["BENCH_CALLS"] ?? 2000);
  const dir = mkdtempSync(join(tmpdir(), "bhatti-bench-"));
  const socketPath = join(dir, "store.sock");
  const server = fork(fileURLToPath(import.meta.url), ["--server", socketPath], {
    execArgv: ["--conditions=source", "--import", "tsx"],
  });
  try {
    const port = await new Promise<number>((ok) =>
      server.once("message", (m) => ok((m as { port: number }).port)),
    );
    const uds = createServiceClient(StoreService, socketPath);
    const tcpSessions = new Http2SessionManager(`http://127.0.0.1:${port}`);
    const tcp = createClient(
      StoreService,
      createConnectTransport({
        httpVersion: "2",
        baseUrl: `http://127.0.0.1:${port}`,
        sessionManager: tcpSessions,
      }),
    );
    const measure = async (call: () => Promise<unknown>) => {
      for (let i = 0; i < warmup; i++) await call();
      const samples: number[] = [];
      for (let i = 0; i < calls; i++) {
        const t = process.hrtime.bigint();
        await call();
        samples.push(Number(process.hrtime.bigint() - t) / 1000);
      }
      return samples;
    };
    // Interleave two rounds so machine noise hits both transports alike.
    const tcpSamples: number[] = [];
    const udsSamples: number[] = [];
    for (let round = 0; round < 2; round++) {
      tcpSamples.push(...(await measure(() => tcp.health({}))));
      udsSamples.push(...(await measure(() => uds.client.health({}))));
    }
    report("Health RPC, Connect over HTTP/2, server in another process", "µs", [
      { name: "TCP 127.0.0.1 (baseline)", samples: tcpSamples },
      { name: "Unix socket", samples: udsSamples },
    ]);
    uds.close();
    tcpSessions.abort();
  } finally {
    server.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}
