import { request } from "node:http";
import { type Server, connect, createServer } from "node:net";
import { WebSocket } from "ws";
import type { Product } from "../thermal/product-harness.js";

// What a share link's holder has: no API key, only the URL. Requests go to the product's gateway
// (127.0.0.1 inside the test netns) through the netns relay, with no Authorization header.

export interface ShareJson {
  id: string;
  sandbox_id: string;
  session_id: string;
  read_only: boolean;
  expires_at: string;
  token?: string;
  url?: string;
}

export async function anonymousGet(
  product: Product,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  const ep = (await product.env.options.dialer.endpoint("127.0.0.1", product.port)) as { path: string };
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: ep.path, method: "GET", path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text: Buffer.concat(chunks).toString(),
        }),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

/** A share viewer's raw WebSocket: collects the terminal output as text. */
export interface ShareSocket {
  readonly ws: WebSocket;
  output(): string;
  /** Resolves once the output contains `text`. */
  waitFor(text: string, timeoutMs?: number): Promise<void>;
  closed(): Promise<{ code: number; reason: string }>;
}

export async function openShareSocket(
  product: Product,
  token: string,
  options: { answerCursorQueries?: boolean } = {},
): Promise<ShareSocket> {
  const answer = options.answerCursorQueries ?? true;
  const ep = (await product.env.options.dialer.endpoint("127.0.0.1", product.port)) as { path: string };
  const ws = new WebSocket(`ws+unix://${ep.path}:/share/${token}/ws`);
  let out = "";
  const waiters = new Set<() => void>();
  ws.on("message", (data: Buffer, isBinary) => {
    if (isBinary) {
      const text = data.toString("utf8");
      out += text;
      // Answer the shell's cursor position query as a terminal does (busybox ash waits for it).
      if (answer && text.includes("\x1b[6n")) ws.send(Buffer.from("\x1b[1;1R"));
    }
    for (const w of waiters) w();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  // Ready once the gateway attached the session (its first text frame): input sent before that is
  // not read (the /sandboxes/:id/ws protocol).
  await new Promise<void>((resolve, reject) => {
    ws.on("message", (data: Buffer, isBinary) => {
      if (!isBinary && data.toString().startsWith('{"type":"session"')) resolve();
    });
    ws.once("close", (code, reason) => reject(new Error(`closed before the session: ${code} ${reason}`)));
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
  });
  return {
    ws,
    output: () => out,
    waitFor(text, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (out.includes(text)) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`"${text}" never appeared; output so far:\n${out}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    closed: () => closed,
  };
}

/** The status of an upgrade to the share socket that is expected to be refused. */
export async function refusedUpgrade(
  product: Product,
  token: string,
): Promise<{ status: number; body: string }> {
  const ep = (await product.env.options.dialer.endpoint("127.0.0.1", product.port)) as { path: string };
  const ws = new WebSocket(`ws+unix://${ep.path}:/share/${token}/ws`);
  return new Promise((resolve, reject) => {
    ws.once("open", () => {
      ws.close();
      reject(new Error("upgrade was accepted"));
    });
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once("error", () => undefined);
  });
}

/**
 * A TCP listener on the test's own loopback relaying to the gateway inside the test netns, so a
 * browser (which cannot dial the relay's Unix socket) reaches it at http://127.0.0.1:<port>.
 */
export async function loopbackRelay(
  product: Product,
  listenPort = 0,
): Promise<{ port: number; close(): Promise<void> }> {
  const ep = (await product.env.options.dialer.endpoint("127.0.0.1", product.port)) as { path: string };
  const sockets = new Set<import("node:net").Socket>();
  const server: Server = createServer((client) => {
    const up = connect({ path: ep.path });
    sockets.add(client);
    sockets.add(up);
    client.pipe(up).pipe(client);
    const done = () => {
      client.destroy();
      up.destroy();
      sockets.delete(client);
      sockets.delete(up);
    };
    client.on("error", done).on("close", done);
    up.on("error", done).on("close", done);
  });
  await new Promise<void>((resolve) => server.listen(listenPort, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return {
    port,
    /** Cuts every relayed connection (a network blip), keeps listening. */
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
