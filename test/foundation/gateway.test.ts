import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { AdminService, StoreService } from "@bhatti/proto";
import { createLogger, createServiceClient, loadConfig, type ServerConfig } from "@bhatti/runtime";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Gateway, createGateway } from "@bhatti/gateway";
import { makeTestDir, repoRoot, waitFor } from "./serve-harness.js";

// The gateway in this process against a real store process: auth, REST errors and Connect.
describe("gateway", () => {
  let dir: string;
  let store: ChildProcess;
  let gateway: Gateway;
  let base: string;
  let adminKey: string;

  beforeAll(async () => {
    dir = makeTestDir();
    const argv = [
      `--socket-dir=${join(dir, "s")}`,
      `--state-dir=${join(dir, "state")}`,
      `--client-config-file=${join(dir, "client.yaml")}`,
      "--log-level=error",
      "--listen=127.0.0.1:0",
    ];
    store = spawn(
      process.execPath,
      [join(repoRoot, "services/store/dist/main.js"), "--config=/dev/null", ...argv],
      {
        stdio: "inherit",
      },
    );
    const config: ServerConfig = loadConfig({ argv: ["--config=/dev/null", ...argv] }).config;
    adminKey = await waitFor("admin key", async () => {
      try {
        return /auth_token: (bht_[0-9a-f]{64})/.exec(readFileSync(join(dir, "client.yaml"), "utf8"))?.[1];
      } catch {
        return undefined;
      }
    });
    gateway = createGateway(config, createLogger({ service: "gateway", level: "error", write: () => {} }));
    gateway.rest.add("GET", "/test/boom", () => {
      throw new Error("secret detail that must not leak");
    });
    gateway.rest.add("GET", "/test/missing", () => {
      throw new ConnectError('sandbox "x" not found', Code.NotFound);
    });
    await new Promise<void>((ok) => gateway.server.listen(0, "127.0.0.1", ok));
    const address = gateway.server.address();
    if (address === null || typeof address === "string") throw new Error("no address");
    base = `http://127.0.0.1:${address.port}`;
  });

  afterAll(async () => {
    await gateway?.close();
    store?.kill("SIGTERM");
    if (store !== undefined && store.exitCode === null) await new Promise((ok) => store.once("exit", ok));
    rmSync(dir, { recursive: true, force: true });
  });

  const get = async (path: string, key?: string) => {
    const res = await fetch(
      `${base}${path}`,
      key === undefined ? {} : { headers: { authorization: `Bearer ${key}` } },
    );
    return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
  };

  it("serves /health without a key and refuses everything else without one", async () => {
    const health = await get("/health");
    expect(health.status).toBe(200);
    expect(health.body["status"]).toBe("ok");
    expect(health.headers.get("x-bhatti-version")).toMatch(/^\d+\.\d+\.\d+/);
    expect(await get("/sandboxes")).toMatchObject({ status: 401, body: { error: "authorization required" } });
    // The path is cleaned before the auth check.
    expect(await get("//health/../sandboxes")).toMatchObject({
      status: 401,
      body: { error: "authorization required" },
    });
    expect(await get("/sandboxes", `bht_${"0".repeat(64)}`)).toMatchObject({
      status: 401,
      body: { error: "invalid api key" },
    });
  });

  it("maps Connect codes to HTTP statuses and hides the detail of a 500", async () => {
    expect(await get("/test/missing", adminKey)).toMatchObject({
      status: 404,
      body: { error: 'sandbox "x" not found' },
    });
    const boom = await get("/test/boom", adminKey);
    expect(boom.status).toBe(500);
    expect(Object.keys(boom.body).sort()).toEqual(["error", "request_id"]);
    expect(boom.body["error"]).toBe("internal error");
    expect(boom.body["request_id"]).toMatch(/^req_[0-9a-f]{16}$/);
    expect(await get("/no/such/route", adminKey)).toMatchObject({
      status: 404,
      body: { error: "not found" },
    });
  });

  it("authenticates Connect calls: Version is public, Status needs an admin key", async () => {
    const client = (key?: string) =>
      createClient(
        AdminService,
        createConnectTransport({
          httpVersion: "1.1",
          baseUrl: base,
          interceptors: [
            (next) => (req) => {
              if (key !== undefined) req.header.set("authorization", `Bearer ${key}`);
              return next(req);
            },
          ],
        }),
      );
    expect((await client().version({})).version).toMatch(/^\d+\.\d+\.\d+/);
    const anonymous = await client()
      .status({})
      .catch((e: unknown) => ConnectError.from(e));
    expect((anonymous as ConnectError).code).toBe(Code.Unauthenticated);

    const status = await client(adminKey).status({});
    const byName = new Map(status.services.map((s) => [s.name, s]));
    expect([...byName.keys()].sort()).toEqual(["gateway", "network", "store", "thermal", "vmm"]);
    expect(byName.get("store")?.ready).toBe(true);
    expect(byName.get("store")?.pid).toBe(store.pid);
    // Not running in this test: reported as not ready with the reason, not left out.
    expect(byName.get("vmm")?.ready).toBe(false);
    expect(byName.get("vmm")?.dependencies[0]?.detail).toContain("unavailable");
    expect(byName.get("gateway")?.ready).toBe(false);

    // A user who is not an admin is refused.
    const storeClient = createServiceClient(StoreService, join(dir, "s", "store.sock"));
    try {
      const admin = await storeClient.client.authenticateApiKey({ apiKey: adminKey });
      const created = await storeClient.client.createUser({
        actingUserId: admin.user?.id ?? "",
        name: `bt-user-${process.pid}`,
      });
      const denied = await client(created.apiKey)
        .status({})
        .catch((e: unknown) => ConnectError.from(e));
      expect((denied as ConnectError).code).toBe(Code.PermissionDenied);
    } finally {
      storeClient.close();
    }
  });
});
