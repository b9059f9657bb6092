import { execFileSync } from "node:child_process";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createLogger, loadConfig } from "@bhatti/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { createGateway, openApiJson } from "@bhatti/gateway";
import {
  type ServeInstance,
  cleanupServe,
  makeTestDir,
  repoRoot,
  runCli,
  startServe,
  waitAllHealthy,
} from "../foundation/serve-harness.js";
import { http } from "./http-client.js";

// The whole product (`bhatti serve`) driven over HTTP, WebSocket and the CLI: everything that
// needs no running sandbox (auth, tenancy, limits, validation, secrets, users, events).
describe("gateway API", () => {
  let dir: string;
  let serve: ServeInstance;
  let admin: string;
  let alice: string;
  let bob: string;

  const createUser = async (name: string, limits: Record<string, number> = {}) => {
    const res = await http(serve.url, "POST", "/users", { key: admin, body: { name, limits } });
    expect(res.status).toBe(201);
    return (res.json() as { api_key: string }).api_key;
  };

  beforeAll(async () => {
    dir = makeTestDir();
    // One small image, so create requests get past image resolution to the checks under test.
    execFileSync("sh", [join(repoRoot, "images/busybox/build.sh"), "--state-dir", join(dir, "state")]);
    serve = await startServe({ dir });
    await waitAllHealthy(serve);
    admin = /auth_token: (bht_[0-9a-f]{64})/.exec(readFileSync(join(dir, "client.yaml"), "utf8"))?.[1] ?? "";
    alice = await createUser("alice");
    bob = await createUser("bob", { creates_per_minute: 3, execs_per_minute: 4 });
  });

  afterAll(async () => {
    if (dir !== undefined) await cleanupServe(dir, serve === undefined ? [] : [serve]);
  });

  it("cleans the path before auth, accepts only the Bearer header, and versions every response", async () => {
    const traversal = await http(serve.url, "GET", "//health/../sandboxes");
    expect(traversal.status).toBe(401);
    expect(traversal.json()).toEqual({ error: "authorization required" });
    expect(traversal.headers["x-bhatti-version"]).toMatch(/^\d+\.\d+\.\d+/);

    const queryToken = await http(serve.url, "GET", `/sandboxes?token=${alice}`);
    expect(queryToken.status).toBe(401);

    const wrong = await http(serve.url, "GET", "/sandboxes", { key: `bht_${"a".repeat(64)}` });
    expect(wrong.status).toBe(401);
    expect(wrong.json()).toEqual({ error: "invalid api key" });

    const ok = await http(serve.url, "GET", "/sandboxes", { key: alice });
    expect(ok.status).toBe(200);
    expect(ok.json()).toEqual([]);
    expect(ok.headers["x-bhatti-version"]).toMatch(/^\d+\.\d+\.\d+/);

    const missing = await http(serve.url, "GET", "/nowhere", { key: alice });
    expect(missing.status).toBe(404);
    expect(missing.json()).toEqual({ error: "not found" });
    expect(missing.headers["x-bhatti-version"]).toBeDefined();
  });

  it("refuses WebSockets without the Bearer header (query tokens included) and hides other users' sandboxes", async () => {
    const status = (path: string, headers: Record<string, string> = {}) =>
      new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(`${serve.url.replace("http", "ws")}${path}`, { headers });
        ws.on("unexpected-response", (_req, res) => {
          resolve(res.statusCode ?? 0);
          res.resume();
        });
        ws.on("open", () => {
          ws.close();
          reject(new Error("upgrade accepted"));
        });
        ws.on("error", () => {});
      });
    expect(await status("/sandboxes/x/ws")).toBe(401);
    expect(await status(`/sandboxes/x/ws?token=${alice}`)).toBe(401);
    expect(await status("/sandboxes/x/exec/ws", { authorization: `Bearer ${alice}` })).toBe(404);
    expect(await status("//health/../sandboxes/x/ws")).toBe(401);
  });

  it("validates create requests before anything is created", async () => {
    const bad = async (body: unknown, status: number, error: RegExp) => {
      const res = await http(serve.url, "POST", "/sandboxes", { key: alice, body });
      expect(res.status).toBe(status);
      expect((res.json() as { error: string }).error).toMatch(error);
    };
    await bad({ name: "no spaces allowed" }, 400, /invalid name/);
    await bad({ name: "ok", cpus: 99 }, 400, /cpus 99 is over the limit/);
    await bad({ name: "ok", memory_mb: 1_000_000 }, 400, /memory_mb .* over the limit/);
    await bad({ name: "ok", env: { "1BAD": "x" } }, 400, /environment variable/);
    await bad({ name: "ok", files: [{ guest_path: "relative", content: "" }] }, 400, /absolute/);
    await bad(
      { name: "ok", persistent_volumes: [{ name: "v" }] },
      501,
      /persistent_volumes is not supported/,
    );
    await bad({ name: "ok", volumes: ["v"] }, 400, /volumes\[0\] must be an object/);
    // A missing secret fails after the row existed: the row is rolled back.
    await bad({ name: "with-secret", secrets: ["NOPE"] }, 400, /secret "NOPE" not found/);
    const list = await http(serve.url, "GET", "/sandboxes", { key: alice });
    expect(list.json()).toEqual([]);

    const notJson = await http(serve.url, "POST", "/sandboxes", { key: alice, raw: "{nope" });
    expect(notJson.status).toBe(400);
    const huge = await http(serve.url, "POST", "/sandboxes", {
      key: alice,
      raw: JSON.stringify({ name: "big", init: "x".repeat(1_100_000) }),
    });
    expect(huge.status).toBe(400);
    expect((huge.json() as { error: string }).error).toMatch(/larger than 1048576/);
  });

  it("validates exec and file requests", async () => {
    const noCmd = await http(serve.url, "POST", "/sandboxes/whatever/exec", {
      key: alice,
      body: { cmd: [] },
    });
    expect(noCmd.status).toBe(400);
    expect(noCmd.json()).toEqual({ error: "cmd required" });
    const unknown = await http(serve.url, "POST", "/sandboxes/whatever/exec", {
      key: alice,
      body: { cmd: ["true"] },
    });
    expect(unknown.status).toBe(404);
    expect((unknown.json() as { error: string }).error).toMatch(/not found/);
    const noPath = await http(serve.url, "GET", "/sandboxes/whatever/files", { key: alice });
    expect(noPath.status).toBe(400);
    expect(noPath.json()).toEqual({ error: "path required" });
    const chunked = await http(serve.url, "PUT", "/sandboxes/whatever/files?path=/tmp/x", {
      key: alice,
      raw: "data",
      headers: { "transfer-encoding": "chunked" },
    });
    expect(chunked.status).toBe(400);
    expect((chunked.json() as { error: string }).error).toMatch(/Content-Length required/);
    const sessions = await http(serve.url, "GET", "/sandboxes/whatever/sessions", { key: alice });
    expect(sessions.status).toBe(404);
  });

  it("keeps secrets per user and never returns values", async () => {
    const empty = await http(serve.url, "POST", "/secrets", {
      key: alice,
      body: { name: "TOKEN", value: "" },
    });
    expect(empty.status).toBe(400);
    const created = await http(serve.url, "POST", "/secrets", {
      key: alice,
      body: { name: "TOKEN", value: "s3cret" },
    });
    expect(created.status).toBe(201);
    expect(created.text).not.toContain("s3cret");
    const replaced = await http(serve.url, "POST", "/secrets", {
      key: alice,
      body: { name: "TOKEN", value: "v2" },
    });
    expect(replaced.status).toBe(200);
    const mine = await http(serve.url, "GET", "/secrets", { key: alice });
    expect((mine.json() as { name: string }[]).map((s) => s.name)).toEqual(["TOKEN"]);
    expect(mine.text).not.toContain("v2");
    // Another user sees nothing and cannot delete it.
    const theirs = await http(serve.url, "GET", "/secrets", { key: bob });
    expect(theirs.json()).toEqual([]);
    expect((await http(serve.url, "DELETE", "/secrets/TOKEN", { key: bob })).status).toBe(404);
    expect((await http(serve.url, "DELETE", "/secrets/TOKEN", { key: alice })).status).toBe(200);
    expect((await http(serve.url, "DELETE", "/secrets/TOKEN", { key: alice })).status).toBe(404);
  });

  it("limits creates and execs per user with token buckets (429 + Retry-After)", async () => {
    // bob: 3 creates/min, 4 execs/min. Invalid requests still spend tokens: the limit comes first.
    const creates: number[] = [];
    for (let i = 0; i < 4; i++) {
      creates.push(
        (await http(serve.url, "POST", "/sandboxes", { key: bob, body: { name: "bad name" } })).status,
      );
    }
    expect(creates).toEqual([400, 400, 400, 429]);
    const limited = await http(serve.url, "POST", "/sandboxes", { key: bob, body: {} });
    expect(limited.status).toBe(429);
    expect(limited.json()).toEqual({ error: "rate limit exceeded" });
    expect(Number(limited.headers["retry-after"])).toBeGreaterThanOrEqual(1);

    const execs: number[] = [];
    for (let i = 0; i < 5; i++) {
      execs.push(
        (await http(serve.url, "POST", "/sandboxes/x/exec", { key: bob, body: { cmd: ["true"] } })).status,
      );
    }
    expect(execs).toEqual([404, 404, 404, 404, 429]);
    // Reads are a separate bucket; alice is not affected by bob's.
    expect((await http(serve.url, "GET", "/sandboxes", { key: bob })).status).toBe(200);
    expect(
      (await http(serve.url, "POST", "/sandboxes/x/exec", { key: alice, body: { cmd: ["true"] } })).status,
    ).toBe(404);
  });

  it("enforces the sandbox-count quota with 429 and Retry-After", async () => {
    const carol = await createUser("carol");
    const patched = await http(serve.url, "PATCH", "/users/carol", {
      key: admin,
      body: { limits: { max_sandboxes: 0 } },
    });
    if (patched.status !== 200) {
      // The store may refuse a zero quota; then nothing more to check here.
      expect(patched.status).toBe(400);
      return;
    }
    const res = await http(serve.url, "POST", "/sandboxes", { key: carol, body: { name: "one" } });
    expect(res.status).toBe(429);
    expect((res.json() as { error: string }).error).toMatch(/sandbox limit reached \(0\/0\)/);
    expect(res.headers["retry-after"]).toBeDefined();
  });

  it("serves users, events and metrics to admins only", async () => {
    const users = await http(serve.url, "GET", "/users", { key: admin });
    expect(users.status).toBe(200);
    const names = (users.json() as { name: string }[]).map((u) => u.name);
    expect(names).toEqual(expect.arrayContaining(["alice", "bob"]));
    expect(users.text).not.toMatch(/bht_[0-9a-f]{64}/);
    expect((await http(serve.url, "GET", "/users", { key: alice })).status).toBe(403);
    expect((await http(serve.url, "GET", "/events", { key: alice })).status).toBe(403);
    expect((await http(serve.url, "GET", "/metrics", { key: bob })).status).toBe(403);
    // A user can see itself, not others (404, not 403: others do not exist for it).
    expect((await http(serve.url, "GET", "/users/alice", { key: alice })).status).toBe(200);
    expect((await http(serve.url, "GET", "/users/bob", { key: alice })).status).toBe(404);

    const events = await http(serve.url, "GET", "/events?type=auth.failed&limit=5", { key: admin });
    expect(events.status).toBe(200);
    const body = events.json() as { events: { type: string }[]; total: number };
    expect(body.events.length).toBeGreaterThan(0);
    expect(body.events.every((e) => e.type === "auth.failed")).toBe(true);
    const metrics = await http(serve.url, "GET", "/metrics", { key: admin });
    expect(metrics.status).toBe(200);
    expect(
      (metrics.json() as { current: { users_total: number } }).current.users_total,
    ).toBeGreaterThanOrEqual(3);

    // Rotation: the old key stops at once.
    const dave = await createUser("dave");
    expect((await http(serve.url, "GET", "/sandboxes", { key: dave })).status).toBe(200);
    const rotated = await http(serve.url, "POST", "/users/dave/rotate-key", { key: admin });
    expect(rotated.status).toBe(200);
    expect((await http(serve.url, "GET", "/sandboxes", { key: dave })).status).toBe(401);
    const fresh = (rotated.json() as { api_key: string }).api_key;
    expect((await http(serve.url, "GET", "/sandboxes", { key: fresh })).status).toBe(200);
  });

  it("serves the OpenAPI document, identical to docs/openapi.json and covering every route", async () => {
    const served = await http(serve.url, "GET", "/openapi.json");
    expect(served.status).toBe(200);
    const committed = readFileSync(join(repoRoot, "docs/openapi.json"), "utf8");
    expect(served.text).toBe(committed);
    expect(openApiJson()).toBe(committed);
    const doc = JSON.parse(committed) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toBe("3.1.0");
    // Every registered REST route (and the two WebSockets) has an operation.
    const config = loadConfig({ argv: ["--config=/dev/null", `--socket-dir=${join(dir, "none")}`] }).config;
    const gateway = createGateway(config, createLogger({ service: "gateway", write: () => {} }));
    try {
      const routes = [
        ...gateway.rest.list(),
        { method: "GET", pattern: "/sandboxes/:id/ws" },
        { method: "GET", pattern: "/sandboxes/:id/exec/ws" },
      ];
      for (const r of routes) {
        const path = r.pattern.replace(/:([A-Za-z_]+)/g, "{$1}");
        expect(doc.paths[path]?.[r.method.toLowerCase()], `${r.method} ${path}`).toBeDefined();
      }
    } finally {
      await gateway.close();
    }
  });

  it("drives the CLI: --json, exit codes, setup and completion", async () => {
    const env = { ...serve.cliEnv, BHATTI_CLIENT_CONFIG: join(dir, "alice.yaml") };
    writeFileSync(join(dir, "alice.yaml"), `api_url: ${serve.url}\nauth_token: ${alice}\n`);
    const list = await runCli(["list", "--json"], env);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout)).toEqual([]);
    const missing = await runCli(["exec", "nosuch", "--", "true"], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/not found/);
    const inspect = await runCli(["inspect", "nosuch"], env);
    expect(inspect.code).toBe(1);
    const badCreate = await runCli(["create", "--name", "bad name"], env);
    expect(badCreate.code).toBe(1);
    expect(badCreate.stderr).toMatch(/invalid name/);

    // setup writes the client config with mode 0600 and fails on a wrong key.
    const setupFile = join(dir, "setup", "config.yaml");
    const setupEnv = { ...serve.cliEnv, BHATTI_CLIENT_CONFIG: setupFile };
    const wrong = await runCli(["setup", "--url", serve.url, "--token", `bht_${"b".repeat(64)}`], setupEnv);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/authentication failed/);
    const good = await runCli(["setup", "--url", serve.url, "--token", alice], setupEnv);
    expect(good.code).toBe(0);
    expect(good.stdout).toContain("✓ authenticated (0 sandboxes)");
    expect(statSync(setupFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(setupFile, "utf8")).toContain(`auth_token: ${alice}`);
    const viaSetup = await runCli(["list", "--json"], { BHATTI_CLIENT_CONFIG: setupFile });
    expect(viaSetup.code).toBe(0);

    for (const shell of ["bash", "zsh", "fish"]) {
      const c = await runCli(["completion", shell], env);
      expect(c.code).toBe(0);
      expect(c.stdout).toContain("shell");
      expect(c.stdout).toContain("__complete-names");
    }
    expect((await runCli(["completion", "tcsh"], env)).code).toBe(1);
  });
});
