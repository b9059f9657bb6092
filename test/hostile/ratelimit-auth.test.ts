import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import {
  type ServeInstance,
  cleanupServe,
  makeTestDir,
  startServe,
  waitAllHealthy,
} from "../foundation/serve-harness.js";

const BURST = 20;
const PER_MINUTE = 60;
const LIFECYCLE_BURST = 3;

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** One HTTP request to the gateway from a chosen loopback source address. */
function call(
  port: number,
  method: string,
  path: string,
  o: { key?: string; from?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...o.headers };
  if (o.key !== undefined) headers["authorization"] = `Bearer ${o.key}`;
  const payload = o.body === undefined ? undefined : Buffer.from(JSON.stringify(o.body));
  if (payload !== undefined) {
    headers["content-type"] = "application/json";
    headers["content-length"] = String(payload.byteLength);
  }
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, method, path, headers, localAddress: o.from ?? "127.0.0.1", agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (d: Buffer) => chunks.push(d));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks).toString(),
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

const randomKey = () => `bht_${randomBytes(32).toString("hex")}`;

interface AuthFailedRow {
  meta: { remote_addr?: string; count?: number };
}

/**
 * Abuse limits through the real product (`bhatti serve`, all five processes) over real HTTP:
 * per-address limiting of requests without a known key (REST, Connect and WebSocket upgrades),
 * the aggregated auth.failed rows in the store, and the per-user lifecycle class.
 */
describe("rate limits of unauthenticated traffic and lifecycle operations", () => {
  let dir: string;
  let serve: ServeInstance;
  let admin: string;
  let alice: string;
  let bob: string;

  const authFailedRows = async (addr: string) => {
    const res = await call(serve.port, "GET", "/events?type=auth.failed&limit=1000", { key: admin });
    expect(res.status, res.text).toBe(200);
    const rows = (JSON.parse(res.text) as { events: AuthFailedRow[] }).events.filter(
      (e) => (e.meta.remote_addr ?? "").replace(/^::ffff:/, "") === addr,
    );
    return { rows: rows.length, attempts: rows.reduce((n, e) => n + (e.meta.count ?? 1), 0) };
  };

  beforeAll(async () => {
    dir = makeTestDir();
    serve = await startServe({
      dir,
      extraArgs: [
        `--rate-unauthenticated-burst=${BURST}`,
        `--rate-unauthenticated-per-minute=${PER_MINUTE}`,
        `--rate-lifecycle-burst=${LIFECYCLE_BURST}`,
        `--rate-lifecycle-per-minute=${LIFECYCLE_BURST}`,
      ],
    });
    await waitAllHealthy(serve);
    admin = /auth_token: (bht_[0-9a-f]{64})/.exec(readFileSync(join(dir, "client.yaml"), "utf8"))?.[1] ?? "";
    const mkUser = async (name: string) => {
      // creates_per_minute 1 keeps the lifecycle bucket at the configured burst.
      const res = await call(serve.port, "POST", "/users", {
        key: admin,
        from: "127.0.0.3",
        body: { name, limits: { creates_per_minute: 1 } },
      });
      expect(res.status, res.text).toBe(201);
      return (JSON.parse(res.text) as { api_key: string }).api_key;
    };
    alice = await mkUser("alice");
    bob = await mkUser("bob");
  }, 120_000);

  afterAll(async () => {
    if (dir !== undefined) await cleanupServe(dir, serve === undefined ? [] : [serve]);
  });

  it("a flood of random keys from one address gets 429 after the burst, with bounded auth.failed rows; others are still served", async () => {
    // The tenant has used its key from the flooding address before: it is known valid there.
    expect((await call(serve.port, "GET", "/sandboxes", { key: alice })).status).toBe(200);
    const before = await authFailedRows("127.0.0.1");

    const started = Date.now();
    const statuses: number[] = [];
    let retryAfter: string | undefined;
    for (let i = 0; i < 200; i++) {
      const r = await call(serve.port, "GET", "/sandboxes", { key: randomKey() });
      statuses.push(r.status);
      if (r.status === 429) {
        retryAfter ??= String(r.headers["retry-after"]);
        expect(JSON.parse(r.text)).toEqual({ error: "rate limit exceeded" });
      }
    }
    const elapsedMin = (Date.now() - started) / 60_000;
    const unauthorized = statuses.filter((s) => s === 401).length;
    const limited = statuses.filter((s) => s === 429).length;
    expect(unauthorized + limited).toBe(200);
    // At most the burst (less what the harness's own first requests took), plus what refilled
    // while the flood ran, reached the store; nothing more.
    expect(unauthorized).toBeGreaterThan(0);
    expect(unauthorized).toBeLessThanOrEqual(BURST + Math.ceil(elapsedMin * PER_MINUTE) + 1);
    expect(limited).toBeGreaterThan(0);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);

    // Connect and WebSocket upgrades from the same address are limited too.
    const connect = await call(serve.port, "POST", "/bhatti.v1.SandboxService/ListSandboxes", {
      key: randomKey(),
      body: {},
    });
    expect(connect.status).toBe(429);
    expect(connect.text).toContain("resource_exhausted");
    const upgrade = await new Promise<{ status: number; retryAfter: unknown }>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${serve.port}/sandboxes/x/ws`, {
        headers: { authorization: `Bearer ${randomKey()}` },
      });
      ws.once("unexpected-response", (_req, res) => {
        resolve({ status: res.statusCode ?? 0, retryAfter: res.headers["retry-after"] });
        res.resume();
      });
      ws.once("open", () => reject(new Error("upgrade accepted")));
      ws.once("error", () => undefined);
    });
    expect(upgrade.status).toBe(429);
    expect(Number(upgrade.retryAfter)).toBeGreaterThanOrEqual(1);

    // The known tenant behind the flooding address, another address, and Connect with a known
    // key are all still served.
    expect((await call(serve.port, "GET", "/sandboxes", { key: alice })).status).toBe(200);
    expect(
      (await call(serve.port, "GET", "/sandboxes", { key: randomKey(), from: "127.0.0.2" })).status,
    ).toBe(401);
    expect((await call(serve.port, "GET", "/sandboxes", { key: bob, from: "127.0.0.2" })).status).toBe(200);
    expect(
      (await call(serve.port, "POST", "/bhatti.v1.SandboxService/ListSandboxes", { key: alice, body: {} }))
        .status,
    ).toBe(200);
    // /health needs no key and is not charged.
    expect((await call(serve.port, "GET", "/health")).status).toBe(200);

    // The store counted every attempt that reached it, in one row per address per minute.
    const after = await authFailedRows("127.0.0.1");
    expect(after.attempts - before.attempts).toBe(unauthorized);
    expect(after.rows - before.rows).toBeLessThanOrEqual(2);
  }, 120_000);

  it("lifecycle operations have their own per-user bucket (REST and Connect share it)", async () => {
    const stop = (key: string) =>
      call(serve.port, "POST", "/sandboxes/no-such-box/stop", { key, from: "127.0.0.4" });
    for (let i = 0; i < LIFECYCLE_BURST; i++) expect((await stop(alice)).status).toBe(404);
    const limited = await stop(alice);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    const viaConnect = await call(serve.port, "POST", "/bhatti.v1.SandboxService/DeleteSandbox", {
      key: alice,
      from: "127.0.0.4",
      body: { sandbox: "no-such-box" },
    });
    expect(viaConnect.status).toBe(429);
    const keepHot = await call(serve.port, "PATCH", "/sandboxes/no-such-box", {
      key: alice,
      from: "127.0.0.4",
      body: { keep_hot: true },
    });
    expect(keepHot.status).toBe(429);
    // Reads are another class; another user has its own bucket.
    expect((await call(serve.port, "GET", "/sandboxes", { key: alice, from: "127.0.0.4" })).status).toBe(200);
    expect((await stop(bob)).status).toBe(404);
    expect(
      (await call(serve.port, "DELETE", "/sandboxes/no-such-box", { key: bob, from: "127.0.0.4" })).status,
    ).toBe(404);
  }, 60_000);
});
