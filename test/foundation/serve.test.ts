import { existsSync, readFileSync, readdirSync } from "node:fs";
import { request } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import {
  type ServeInstance,
  adminStatus,
  cleanupServe,
  isAlive,
  makeTestDir,
  runCli,
  startServe,
  waitAllHealthy,
  waitFor,
} from "./serve-harness.js";

function getJson(url: string): Promise<{ status: number; body: unknown; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => {
        text += d.toString();
      });
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(text), headers: res.headers }),
      );
    })
      .on("error", reject)
      .end();
  });
}

const sockets = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".sock")) : []);

describe("bhatti serve", () => {
  let dir: string | undefined;
  let instances: ServeInstance[] = [];
  afterEach(async () => {
    if (dir !== undefined) await cleanupServe(dir, instances);
    dir = undefined;
    instances = [];
  });

  it("runs five healthy processes, restarts a killed one, refuses a second supervisor, stops on SIGTERM", {
    timeout: 120_000,
  }, async () => {
    dir = makeTestDir();
    const serve = await startServe({ dir });
    instances.push(serve);
    const before = await waitAllHealthy(serve);
    expect(before.map((s) => s.name).sort()).toEqual(["gateway", "network", "store", "thermal", "vmm"]);
    const pids = new Set(before.map((s) => s.pid));
    expect(pids.size).toBe(5);
    for (const s of before) {
      expect(s.version).toMatch(/^\d+\.\d+\.\d+/);
      expect(isAlive(s.pid)).toBe(true);
    }
    expect(sockets(serve.socketDir).sort()).toEqual([
      "network.sock",
      "store.sock",
      "supervisor.sock",
      "thermal.sock",
      "vmm.sock",
    ]);

    // /health needs no key and has the v1 shape.
    const health = await getJson(`${serve.url}/health`);
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: "ok" });
    expect((health.body as { uptime: string }).uptime).toMatch(/^(\d+h)?(\d+m)?\d+s$/);
    expect(health.headers["x-bhatti-version"]).toBe(before[0]?.version);

    // The key the store wrote to the temp client config is what authenticates admin status.
    expect(readFileSync(serve.cliEnv["BHATTI_CLIENT_CONFIG"] ?? "", "utf8")).toMatch(
      /auth_token: bht_[0-9a-f]{64}/,
    );
    const anonymous = await runCli(["admin", "status", "--url", serve.url], {
      BHATTI_CLIENT_CONFIG: `${dir}/none.yaml`,
    });
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr).toContain("authorization required");

    // SIGKILL one service: the supervisor restarts it and it is healthy again with a new pid.
    const vmm = before.find((s) => s.name === "vmm");
    expect(vmm).toBeDefined();
    process.kill(vmm?.pid ?? 0, "SIGKILL");
    const after = await waitFor("vmm restarted", async () => {
      const services = await adminStatus(serve);
      const v = services?.find((s) => s.name === "vmm");
      return v?.healthy && v.pid !== vmm?.pid && services?.every((s) => s.healthy) ? services : undefined;
    });
    const newVmm = after.find((s) => s.name === "vmm");
    expect(isAlive(newVmm?.pid ?? 0)).toBe(true);
    // Every line carries the name of the process that wrote it.
    expect(serve.output()).toMatch(/^store {3}\| \{.*"service":"store"/m);
    expect(serve.output()).toMatch(/^gateway \| \{.*"service":"gateway"/m);
    expect(serve.output()).toMatch(/^serve {3}\| \{.*"msg":"process exited; restarting".*"process":"vmm"/m);

    // A second supervisor on the same socket dir refuses, naming the first one's pid.
    const second = await runCli([
      "serve",
      `--socket-dir=${serve.socketDir}`,
      `--state-dir=${dir}/state2`,
      "--listen=127.0.0.1:0",
      `--client-config-file=${dir}/client2.yaml`,
    ]);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`another bhatti serve (pid ${serve.process.pid}) is already running`);
    expect(second.stderr).toContain(serve.socketDir);

    // SIGTERM: every child exits, the supervisor exits 0 and no socket is left.
    const childPids = after.map((s) => s.pid);
    serve.process.kill("SIGTERM");
    const exit = await serve.exited;
    expect(exit.code).toBe(0);
    for (const pid of childPids) expect(isAlive(pid)).toBe(false);
    expect(sockets(serve.socketDir)).toEqual([]);
  });

  it("reclaims the socket dir of a supervisor that was killed with SIGKILL", {
    timeout: 120_000,
  }, async () => {
    dir = makeTestDir();
    const first = await startServe({ dir });
    instances.push(first);
    const before = await waitAllHealthy(first);
    first.process.kill("SIGKILL");
    await first.exited;
    // Its children notice (IPC channel closed) and exit; the files may stay behind.
    const second = await startServe({ dir, port: first.port });
    instances.push(second);
    const after = await waitAllHealthy(second);
    for (const s of before) expect(isAlive(s.pid)).toBe(false);
    expect(after.every((s) => !before.some((b) => b.pid === s.pid))).toBe(true);
    second.process.kill("SIGTERM");
    expect((await second.exited).code).toBe(0);
    expect(sockets(second.socketDir)).toEqual([]);
  });
});
