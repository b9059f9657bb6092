// What one Connect call between two bhatti processes costs, by transport, server in another
// process, all on Unix sockets and interleaved in one run:
//   - a bare HTTP/1.1 request to a handler that answers a constant (the floor: sockets + HTTP);
//   - Connect unary over HTTP/1.1 (node:http server, keep-alive client);
//   - Connect unary through @bhatti/runtime (how the services talk, with its interceptors and the
//     server's logging/request-id wrapper), over HTTP/1.1 (the product's transport since issue 15)
//     and over HTTP/2 (the earlier transport, the baseline: httpVersion "2");
//   - Connect unary over HTTP/2 with the plain connect-node client (no bhatti interceptors).
// Run: node --conditions=source --import tsx bench/seed-table/rpc-transport.ts
import { fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { StoreService } from "@bhatti/proto";
import { createLogger, createServiceClient, processHealth, startConnectServer } from "@bhatti/runtime";
import { createClient } from "@connectrpc/connect";
import { Http2SessionManager, connectNodeAdapter, createConnectTransport } from "@connectrpc/connect-node";
import { report } from "../foundation/stats.js";

const routes = (r: Parameters<Parameters<typeof connectNodeAdapter>[0]["routes"]>[0]) =>
  r.service(StoreService, { health: () => ({ health: processHealth("store") }) });

if (process.argv[2] === "--server") {
  const dir = process.argv[3] ?? "";
  for (const httpVersion of ["1.1", "2"] as const) {
    await startConnectServer({
      socketPath: join(dir, `bhatti-${httpVersion}.sock`),
      routes,
      logger: createLogger({ service: "bench", level: "error" }),
      httpVersion,
    });
  }
  const h1 = http.createServer(connectNodeAdapter({ routes }));
  await new Promise<void>((ok) => h1.listen(join(dir, "h1.sock"), ok));
  const h2 = http2.createServer(connectNodeAdapter({ routes }));
  await new Promise<void>((ok) => h2.listen(join(dir, "h2.sock"), ok));
  const bare = http.createServer((_req, res) => res.end('{"ok":true}'));
  await new Promise<void>((ok) => bare.listen(join(dir, "bare.sock"), ok));
  process.send?.("ready");
} else {
  const calls = Number(process.env["BENCH_CALLS"] ?? 1000);
  const dir = mkdtempSync(join(tmpdir(), "bhatti-test-rpc-"));
  const server = fork(fileURLToPath(import.meta.url), ["--server", dir], {
    execArgv: ["--conditions=source", "--import", "tsx"],
  });
  try {
    await new Promise((ok) => server.once("message", ok));
    const bhatti = createServiceClient(StoreService, join(dir, "bhatti-2.sock"), { httpVersion: "2" });
    const bhatti1 = createServiceClient(StoreService, join(dir, "bhatti-1.1.sock"), { httpVersion: "1.1" });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const h1 = createClient(
      StoreService,
      createConnectTransport({
        httpVersion: "1.1",
        baseUrl: "http://localhost",
        nodeOptions: { agent, socketPath: join(dir, "h1.sock") },
      }),
    );
    const sessions = new Http2SessionManager(
      "http://localhost",
      {},
      { createConnection: () => net.connect(join(dir, "h2.sock")) },
    );
    const h2 = createClient(
      StoreService,
      createConnectTransport({ httpVersion: "2", baseUrl: "http://localhost", sessionManager: sessions }),
    );
    // The plain client against bhatti's server (its request-context interceptor), to split the two sides.
    const toBhattiSessions = new Http2SessionManager(
      "http://localhost",
      {},
      { createConnection: () => net.connect(join(dir, "bhatti-2.sock")) },
    );
    const toBhatti = createClient(
      StoreService,
      createConnectTransport({
        httpVersion: "2",
        baseUrl: "http://localhost",
        sessionManager: toBhattiSessions,
      }),
    );
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
      ["bare HTTP/1.1 request (floor)", bare],
      ["Connect over HTTP/1.1", () => h1.health({})],
      ["Connect over HTTP/1.1, @bhatti/runtime (product)", () => bhatti1.client.health({})],
      ["Connect over HTTP/2, @bhatti/runtime", () => bhatti.client.health({})],
      ["Connect over HTTP/2, plain client", () => h2.health({})],
      ["  … with a 30 s deadline (timeoutMs)", () => h2.health({}, { timeoutMs: 30_000 })],
      ["  … plain client, bhatti's server", () => toBhatti.health({})],
    ];
    const samples = variants.map(() => [] as number[]);
    for (const [, call] of variants) for (let i = 0; i < 200; i++) await call();
    // Round-robin in blocks of 50, so machine noise hits every variant alike.
    for (let done = 0; done < calls; done += 50) {
      for (const [k, [, call]] of variants.entries()) {
        for (let i = 0; i < 50; i++) {
          const t = process.hrtime.bigint();
          await call();
          samples[k]?.push(Number(process.hrtime.bigint() - t) / 1000);
        }
      }
    }
    report(
      "Connect unary call (Health) between two processes, Unix sockets",
      "µs",
      variants.map(([name], k) => ({ name, samples: samples[k] ?? [] })),
    );
    bhatti.close();
    bhatti1.close();
    sessions.abort();
    toBhattiSessions.abort();
    agent.destroy();
  } finally {
    server.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}
