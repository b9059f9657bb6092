import { execFile, spawn } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type StoreProcess, removeTestDir, startStoreProcess } from "@bhatti/service-store/testing";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const address = server.address();
  await new Promise<void>((ok) => server.close(() => ok()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

// The real store process, the real gateway process and the bundled CLI, end to end.
describe("bhatti user/secret/admin commands through the gateway", () => {
  let store: StoreProcess;
  let gateway: ReturnType<typeof spawn>;
  let env: NodeJS.ProcessEnv;
  let gatewayOutput = "";

  const cli = (
    args: readonly string[],
    input?: string,
    extraEnv: NodeJS.ProcessEnv = {},
  ): Promise<CliResult> =>
    new Promise((resolve) => {
      const child = execFile(
        process.execPath,
        [join(root, "cli/dist/bhatti.mjs"), ...args],
        { env: { ...process.env, ...env, ...extraEnv }, timeout: 30_000 },
        (error, stdout, stderr) =>
          resolve({
            code: error === null ? 0 : typeof error.code === "number" ? error.code : 1,
            stdout,
            stderr,
          }),
      );
      if (input !== undefined) child.stdin?.end(input);
      else child.stdin?.end();
    });

  beforeAll(async () => {
    const port = await freePort();
    store = await startStoreProcess({ extraArgs: [`--listen=127.0.0.1:${port}`] });
    gateway = spawn(
      process.execPath,
      [
        join(root, "gateway/dist/main.js"),
        `--config=${join(store.stateDir, "server-config.yaml")}`,
        `--socket-dir=${join(store.stateDir, "run")}`,
        `--state-dir=${store.stateDir}`,
        `--listen=127.0.0.1:${port}`,
        "--log-level=warn",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    gateway.stdout?.on("data", (d: Buffer) => (gatewayOutput += d.toString()));
    gateway.stderr?.on("data", (d: Buffer) => (gatewayOutput += d.toString()));
    // The client config the store wrote on first start is all the CLI needs.
    env = { BHATTI_CLIENT_CONFIG: store.clientConfigFile, BHATTI_URL: "", BHATTI_TOKEN: "" };
    const deadline = Date.now() + 20_000;
    while ((await cli(["user", "whoami", "--json"])).code !== 0) {
      if (Date.now() > deadline) throw new Error(`gateway did not come up: ${gatewayOutput}`);
      await new Promise((ok) => setTimeout(ok, 100));
    }
  });
  afterAll(async () => {
    if (gateway && gateway.exitCode === null) {
      gateway.kill("SIGTERM");
      await new Promise((ok) => gateway.once("exit", ok));
    }
    await store?.kill();
    if (store) removeTestDir(store.stateDir);
  });

  it("creates users (key printed once), lists them, and refuses non-admins", async () => {
    const created = await cli([
      "user",
      "create",
      "--name",
      "alice",
      "--max-sandboxes",
      "3",
      "--max-memory",
      "2048",
    ]);
    expect(created.code).toBe(0);
    const key = /api key \(shown once, store it now\): (bht_[0-9a-f]{64})/.exec(created.stdout)?.[1];
    expect(key).toBeDefined();
    const list = await cli(["user", "list", "--json"]);
    const users = JSON.parse(list.stdout) as { name: string; limits: Record<string, number> }[];
    expect(users.find((u) => u.name === "alice")?.limits).toMatchObject({
      max_sandboxes: 3,
      max_memory_mb_per_sandbox: 2048,
      max_cpus_per_sandbox: 4,
    });
    expect(list.stdout).not.toContain(key);
    const denied = await cli(["user", "list", "--token", key ?? ""]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain("admin privileges required");
    const dup = await cli(["user", "create", "--name", "alice"]);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/already in use/);
    const bad = await cli(["user", "create", "--name", "no spaces"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$");
  });

  it("sets secrets from stdin or --value, lists names only, deletes", async () => {
    const set = await cli(["secret", "set", "GH_TOKEN"], "ghp_value_from_stdin\n");
    expect(set.code).toBe(0);
    expect(set.stdout).toContain("created secret GH_TOKEN");
    expect((await cli(["secret", "set", "OTHER", "--value", "v2"])).code).toBe(0);
    const list = await cli(["secret", "list", "--json"]);
    expect((JSON.parse(list.stdout) as { name: string }[]).map((s) => s.name)).toEqual(["GH_TOKEN", "OTHER"]);
    expect(list.stdout).not.toContain("ghp_value_from_stdin");
    // stdin is not a terminal here, so nobody is asked (the seed's rule): the delete just happens.
    expect((await cli(["secret", "delete", "OTHER"])).code).toBe(0);
    const missing = await cli(["secret", "delete", "OTHER", "-y"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('secret "OTHER" not found');
    // The stored value is exactly what was piped, minus echo's newline.
    const adminId = (
      await store.client.authenticateApiKey({
        apiKey:
          (parseYaml(readFileSync(store.clientConfigFile, "utf8")) as Record<string, string>)["auth_token"] ??
          "",
      })
    ).user?.id;
    expect(
      (await store.client.resolveSecrets({ userId: adminId ?? "", names: ["GH_TOKEN"] })).values,
    ).toEqual({
      GH_TOKEN: "ghp_value_from_stdin",
    });
  });

  it("rotating a key makes the old one fail at once, even though the gateway had cached it", async () => {
    const created = await cli(["user", "create", "--name", "carol", "--json"]);
    const oldKey = (JSON.parse(created.stdout) as { api_key: string }).api_key;
    expect((await cli(["user", "whoami", "--token", oldKey])).stdout).toContain("carol");
    const rotated = await cli(["user", "rotate-key", "carol", "--json"]);
    const newKey = (JSON.parse(rotated.stdout) as { api_key: string }).api_key;
    const old = await cli(["user", "whoami", "--token", oldKey]);
    expect(old.code).toBe(1);
    expect(old.stderr).toContain("invalid api key");
    expect((await cli(["user", "whoami", "--token", newKey])).stdout).toContain("carol");
  });

  // `bhatti --json` prints the REST API's body for the same object (one shape, @bhatti/proto/rest-json).
  it("--json of users and secrets equals the REST body for the same object", async () => {
    const config = parseYaml(readFileSync(store.clientConfigFile, "utf8")) as Record<string, string>;
    const rest = async (path: string): Promise<unknown> => {
      const res = await fetch(`${config["api_url"]}${path}`, {
        headers: { authorization: `Bearer ${config["auth_token"]}` },
      });
      expect(res.status, path).toBe(200);
      return res.json();
    };
    const json = async (args: readonly string[], input?: string): Promise<unknown> => {
      const r = await cli(["--json", ...args], input);
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as unknown;
    };
    const created = (await json(["user", "create", "--name", "dora", "--max-sandboxes", "2"])) as Record<
      string,
      unknown
    >;
    const { api_key: apiKey, ...createdUser } = created;
    expect(apiKey).toMatch(/^bht_[0-9a-f]{64}$/);
    expect(createdUser).toEqual(await rest("/users/dora"));
    expect(await json(["user", "list"])).toEqual(await rest("/users"));
    expect(await json(["user", "limits", "dora", "--max-images", "7"])).toEqual(await rest("/users/dora"));
    expect(await json(["user", "whoami"])).toEqual(await rest("/users/admin"));
    const set = await json(["secret", "set", "PARITY"], "v\n");
    expect([set]).toEqual(
      ((await rest("/secrets")) as { name: string }[]).filter((s) => s.name === "PARITY"),
    );
    expect(await json(["secret", "list"])).toEqual(await rest("/secrets"));
    expect(await json(["secret", "delete", "PARITY", "-y"])).toEqual({ status: "deleted" });
    expect(await json(["user", "delete", "dora", "-y"])).toEqual({ status: "deleted" });
  });

  it("shows events, metrics and makes a backup", async () => {
    const events = await cli(["admin", "events", "--type", "user.", "--since", "1h", "--json"]);
    expect(events.code).toBe(0);
    const parsed = JSON.parse(events.stdout) as { events: { type: string }[] };
    expect(parsed.events.map((e) => e.type)).toEqual(
      expect.arrayContaining(["user.created", "user.key_rotated"]),
    );
    const count = await cli(["admin", "events", "--type", "auth.failed", "--count"]);
    expect(Number(count.stdout.trim())).toBeGreaterThanOrEqual(1);
    const metrics = await cli(["admin", "metrics", "--json"]);
    expect((JSON.parse(metrics.stdout) as { current: { users_total: number } }).current.users_total).toBe(3);
    const human = await cli(["admin", "metrics"]);
    expect(human.stdout).toMatch(/users:\s+3/);
    // A bare name lands in the server's backup directory (default <state_dir>/backups), 0600.
    const backup = await cli(["admin", "backup", "admin-backup.db"]);
    expect(backup.code, backup.stderr).toBe(0);
    const target = join(store.stateDir, "backups", "admin-backup.db");
    expect(existsSync(target)).toBe(true);
    expect(statSync(target).mode & 0o777).toBe(0o600);
    const outside = await cli(["admin", "backup", join(store.stateDir, "elsewhere.db")]);
    expect(outside.code).not.toBe(0);
    expect(existsSync(join(store.stateDir, "elsewhere.db"))).toBe(false);
  });
});
