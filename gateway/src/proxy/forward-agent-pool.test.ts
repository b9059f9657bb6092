import * as http from "node:http";
import { type AddressInfo, connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createForwardAgentPool } from "./forward-agent-pool.js";

/**
 * The pool with real loopback sockets: an "app" that reports the caller's port (one per pooled
 * connection) and counts closed connections, and a dial function standing in for the AppDialer.
 */
describe("forward agent pool", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  const setup = async () => {
    let closed = 0;
    const app = http.createServer((req, res) => res.end(String(req.socket.remotePort)));
    app.on("connection", (s) => s.on("close", () => closed++));
    await new Promise<void>((resolve) => app.listen(0, "127.0.0.1", resolve));
    const port = (app.address() as AddressInfo).port;
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          app.closeAllConnections();
          app.close(() => resolve());
        }),
    );
    const dials: string[] = [];
    const pool = createForwardAgentPool(
      async (sandboxId) => {
        dials.push(sandboxId);
        return connect({ host: "127.0.0.1", port });
      },
      { idleMs: 30_000 },
    );
    cleanups.push(() => pool.close());
    const get = (sandboxId: string) =>
      new Promise<number>((resolve, reject) => {
        http
          .get({ agent: pool.agentFor(sandboxId, 3000), host: "localhost", port: 3000, path: "/" }, (res) => {
            let text = "";
            res.on("data", (d: Buffer) => {
              text += d.toString();
            });
            res.on("end", () => resolve(Number(text)));
          })
          .on("error", reject);
      });
    return { pool, get, dials, closedCount: () => closed };
  };

  const until = async (what: () => boolean) => {
    while (!what()) await new Promise((resolve) => setImmediate(resolve));
  };

  it("reuses one connection per (sandbox, port) across requests", async () => {
    const { get, dials } = await setup();
    const first = await get("sb-1");
    expect(await get("sb-1")).toBe(first);
    expect(await get("sb-1")).toBe(first);
    expect(dials).toEqual(["sb-1"]);
  });

  it("dropSandbox closes that sandbox's pooled connections only; the next request dials again", async () => {
    const { pool, get, dials, closedCount } = await setup();
    const a = await get("sb-a");
    const b = await get("sb-b");
    pool.dropSandbox("sb-a");
    await until(() => closedCount() === 1);
    // sb-b's connection is untouched and still reused.
    expect(await get("sb-b")).toBe(b);
    const again = await get("sb-a");
    expect(again).not.toBe(a);
    expect(dials).toEqual(["sb-a", "sb-b", "sb-a"]);
  });
});
