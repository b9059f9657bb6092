import { request } from "node:http";
import { type Server, type Socket, createConnection, createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { WebSocket } from "ws";
import { type Product, exec } from "../thermal/product-harness.js";
import { WEB_APP_SOURCE } from "./sandbox-web-app.js";

export interface RawResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
}

/** The gateway's `host:port` inside the test netns, reached through the relay's Unix socket. */
export async function endpointPath(product: Product, port = product.port): Promise<string> {
  const ep = await product.env.options.dialer.endpoint("127.0.0.1", port);
  return (ep as { path: string }).path;
}

/** One HTTP request to a listener of the product (any Host header, raw bytes both ways). */
export function rawRequest(
  socketPath: string,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: Buffer } = {},
): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const headers = { ...options.headers };
    if (options.body !== undefined) headers["content-length"] = String(options.body.byteLength);
    const req = request({ socketPath, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("end", () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString("utf8") });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

/** A WebSocket through a listener of the product; resolves once open, rejects with the refusal status. */
export async function openWebSocket(
  socketPath: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<WebSocket> {
  const ws = new WebSocket(`ws+unix://${socketPath}:${path}`, { headers });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
  });
  return ws;
}

export function nextMessage(ws: WebSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    ws.once("message", (data) => resolve(String(data)));
    ws.once("close", () => reject(new Error("closed before a message")));
  });
}

/**
 * Starts the test web app (sandbox-web-app.ts) in the sandbox with the agent package's Node,
 * detached, on `ports`, and waits until the owner proxy reaches it on the first one.
 */
export async function startWebApp(
  product: Product,
  sandboxId: string,
  ports: readonly (number | string)[],
): Promise<void> {
  const b64 = Buffer.from(WEB_APP_SOURCE).toString("base64");
  const wrote = await exec(product, sandboxId, ["sh", "-c", `echo ${b64} | base64 -d > /tmp/web-app.js`]);
  if (wrote.body.exit_code !== 0) throw new Error(`writing the app: ${JSON.stringify(wrote.body)}`);
  const started = await product.http("POST", `/sandboxes/${sandboxId}/exec`, {
    body: {
      cmd: [
        "/.bhatti/lib/ld-linux-x86-64.so.2",
        "--library-path",
        "/.bhatti/lib",
        "/.bhatti/node",
        "/tmp/web-app.js",
        ...ports.map(String),
      ],
      detach: true,
    },
  });
  if (started.status !== 200) throw new Error(`starting the app: ${started.status} ${started.text}`);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const first = String(ports[0]).split(":").pop();
    const res = await product.http("GET", `/sandboxes/${sandboxId}/proxy/${first}/headers`);
    if (res.status === 200) return;
    if (Date.now() > deadline) throw new Error(`the web app never answered: ${res.status} ${res.text}`);
    await sleep(100);
  }
}

/**
 * A TCP port on the host's loopback relayed to a listener inside the test netns, for clients
 * that need a real address (Chromium: `http://<alias>.localhost:<port>/` resolves to loopback).
 */
export async function loopbackRelay(socketPath: string): Promise<{ port: number; close(): Promise<void> }> {
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection(socketPath);
    for (const s of [client, upstream]) {
      open.add(s);
      s.once("close", () => open.delete(s));
    }
    client.pipe(upstream).pipe(client);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no relay address");
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of open) s.destroy();
      }),
  };
}
