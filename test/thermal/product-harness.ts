import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { ThermalService, VmmService } from "@bhatti/proto";
import { type ServiceClient, createServiceClient } from "@bhatti/runtime";
import { WebSocket } from "ws";
import type { GuestInit } from "@bhatti/service-vmm/adapters";
import { type GvisorTestEnv, RUNSC_PATH, createGvisorTestEnv } from "../engine-conformance/gvisor-factory.js";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const bhattiBin = join(repoRoot, "cli/dist/bhatti.mjs");

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json<T = unknown>(): T;
}

/**
 * The whole product (`bhatti serve`: store, network, vmm, thermal, gateway) running inside a
 * stand-in host netns with the gvisor engine, the busybox image and temp dirs. The vmm wires
 * sandboxes onto the netns's bridge itself (`vmm_local_network`), so nothing touches the root
 * netns. The test reaches the gateway (127.0.0.1 inside that netns) through the netns relay.
 */
export interface Product {
  readonly env: GvisorTestEnv;
  readonly port: number;
  readonly socketDir: string;
  readonly adminKey: string;
  /** Key of a user with generous rate limits, used for every sandbox request. */
  readonly userKey: string;
  http(
    method: string,
    path: string,
    options?: { body?: unknown; headers?: Record<string, string> },
  ): Promise<HttpResult>;
  /** A WebSocket to the gateway (through the relay), authenticated as the admin. */
  websocket(path: string): Promise<WebSocket>;
  /** The `bhatti` CLI run inside the netns against this product. */
  cli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  thermal(): ServiceClient<typeof ThermalService>;
  /** Pid of one of serve's children, by its bundle path (e.g. "services/thermal/dist"). */
  childPid(bundle: string): number | undefined;
  output(): string;
  /** SIGTERM to serve; resolves when it exited. */
  stop(): Promise<void>;
  /** Starts serve again on the same state (after stop), with these flags instead of the first ones. */
  restart(flags?: readonly string[]): Promise<void>;
  /** Destroys every sandbox, stops serve and removes everything the test created. */
  dispose(): Promise<void>;
}

export interface ProductOptions {
  /** Extra `bhatti serve` flags (thermal thresholds...). */
  flags: readonly string[];
  /** Extra environment for `bhatti serve` and its children (crash points...). */
  env?: Readonly<Record<string, string>>;
  /** The bhatti.mjs that runs `bhatti serve` (default: this repository's cli/dist/bhatti.mjs). */
  serveBundle?: string;
}

function run(file: string, args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs: number) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(file, args, { env, timeout: timeoutMs, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

export async function startProduct(options: ProductOptions): Promise<Product> {
  const env = await createGvisorTestEnv();
  const socketDir = join(env.stateDir, "s");
  const clientConfig = join(env.stateDir, "client.yaml");
  const userConfig = join(env.stateDir, "client-user.yaml");
  const port = 18_000 + Math.floor(Math.random() * 20_000);
  const init = env.options.init as Extract<GuestInit, { kind: "agent" }>;
  const subnet = `10.252.${Number.parseInt(env.runId.slice(0, 2), 16)}`;
  const hostNetns = env.hostNetnsPath.split("/").pop() as string;
  writeFileSync(join(env.stateDir, "config.yaml"), "");
  const childEnv = {
    ...process.env,
    BHATTI_CLIENT_CONFIG: clientConfig,
    BHATTI_URL: `http://127.0.0.1:${port}`,
    ...options.env,
  };
  const baseArgs = [
    `--net=${env.hostNetnsPath}`,
    "--",
    process.execPath,
    options.serveBundle ?? bhattiBin,
    "serve",
    "--config=/dev/null",
    `--socket-dir=${socketDir}`,
    `--state-dir=${env.stateDir}`,
    `--listen=127.0.0.1:${port}`,
    `--client-config-file=${clientConfig}`,
    `--runsc-path=${RUNSC_PATH}`,
    `--runsc-platform=${env.options.platform}`,
    `--agent-package-dir=${init.packageDir}`,
    `--cgroup-parent=${env.options.cgroupParent}`,
    "--default-image=busybox",
    `--vmm-local-network=netns=${hostNetns},bridge=btbr${env.runId},subnet=${subnet}`,
    // The network service runs in the test netns; /run/netns is shared, so test names there too.
    "--network-netns-prefix=bt-",
    "--log-level=info",
    // No background template builds (docs/templates.md) unless a test asks for them in its flags.
    "--create-template-images=",
  ];
  let args = [...baseArgs, ...options.flags];
  let serve: ChildProcess;
  let output = "";
  let exited: Promise<void>;
  const launch = () => {
    serve = spawn("nsenter", args, { stdio: ["ignore", "pipe", "pipe"], env: childEnv });
    serve.stdout?.on("data", (d: Buffer) => (output += d.toString()));
    serve.stderr?.on("data", (d: Buffer) => (output += d.toString()));
    exited = new Promise((resolve) => serve.once("exit", () => resolve()));
  };

  let thermalClient: ServiceClient<typeof ThermalService> | undefined;
  const endpoint = async () => env.options.dialer.endpoint("127.0.0.1", port);

  const product: Product = {
    env,
    port,
    socketDir,
    adminKey: "",
    userKey: "",
    async http(method, path, o = {}) {
      const ep = await endpoint();
      const key =
        path.startsWith("/events") || path.startsWith("/users") ? product.adminKey : product.userKey;
      const headers: Record<string, string> = { authorization: `Bearer ${key}`, ...o.headers };
      const payload = o.body === undefined ? undefined : Buffer.from(JSON.stringify(o.body));
      if (payload !== undefined) {
        headers["content-type"] = "application/json";
        headers["content-length"] = String(payload.byteLength);
      }
      return new Promise((resolve, reject) => {
        const target = "path" in ep ? { socketPath: ep.path } : { host: ep.host, port: ep.port };
        const req = request({ ...target, method, path, headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (d: Buffer) => chunks.push(d));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              text,
              json: <T>() => JSON.parse(text) as T,
            });
          });
        });
        req.on("error", reject);
        req.end(payload);
      });
    },
    async websocket(path) {
      const ep = await endpoint();
      const url = "path" in ep ? `ws+unix://${ep.path}:${path}` : `ws://${ep.host}:${ep.port}${path}`;
      const ws = new WebSocket(url, {
        headers: { authorization: `Bearer ${product.userKey}` },
      });
      // Frames that arrive with the upgrade response (a session's scrollback replay) can be
      // emitted before "open"; keep them and emit them again once the caller has had the chance
      // to listen (process.nextTick runs after the caller's await continuation, before any I/O).
      const early: [WebSocket.RawData, boolean][] = [];
      const keepEarly = (data: WebSocket.RawData, isBinary: boolean) => early.push([data, isBinary]);
      ws.on("message", keepEarly);
      await new Promise<void>((resolve, reject) => {
        ws.once("open", () => resolve());
        ws.once("error", reject);
        ws.once("unexpected-response", (_req, res) =>
          reject(new Error(`upgrade refused: ${res.statusCode}`)),
        );
      });
      ws.off("message", keepEarly);
      if (early.length > 0)
        process.nextTick(() => {
          for (const [data, isBinary] of early) ws.emit("message", data, isBinary);
        });
      return ws;
    },
    cli: (cliArgs) =>
      run(
        "nsenter",
        [`--net=${env.hostNetnsPath}`, "--", process.execPath, bhattiBin, ...cliArgs],
        { ...childEnv, BHATTI_CLIENT_CONFIG: userConfig },
        120_000,
      ),
    thermal() {
      thermalClient ??= createServiceClient(ThermalService, join(socketDir, "thermal.sock"), {
        defaultTimeoutMs: 10_000,
      });
      return thermalClient;
    },
    childPid(bundle) {
      for (const entry of readdirSync("/proc")) {
        if (!/^\d+$/.test(entry)) continue;
        try {
          const cmd = readFileSync(`/proc/${entry}/cmdline`, "utf8");
          if (cmd.includes(bundle) && cmd.includes(socketDir)) return Number(entry);
        } catch {
          // exited
        }
      }
      return undefined;
    },
    output: () => output,
    async stop() {
      thermalClient?.close();
      thermalClient = undefined;
      serve.kill("SIGTERM");
      await Promise.race([exited, sleep(120_000)]);
    },
    async restart(flags) {
      if (flags !== undefined) args = [...baseArgs, ...flags];
      launch();
      await waitHealthy();
    },
    async dispose() {
      try {
        if (serve.exitCode === null && serve.signalCode === null) {
          // A test (or benchmark) may have used up the read bucket: wait it out briefly.
          let list = await product.http("GET", "/sandboxes").catch(() => undefined);
          for (let i = 0; i < 10 && list?.status === 429; i++) {
            await sleep(1000);
            list = await product.http("GET", "/sandboxes").catch(() => undefined);
          }
          const ids = list?.status === 200 ? list.json<{ id: string }[]>().map((s) => s.id) : [];
          await Promise.all(
            ids.map((id) => product.http("DELETE", `/sandboxes/${id}`).catch(() => undefined)),
          );
          await product.stop();
        }
      } finally {
        if (serve.exitCode === null && serve.signalCode === null) serve.kill("SIGKILL");
        // Anything serve left (it should have left nothing but adopted sandboxes) dies with the env.
        for (const entry of readdirSync("/proc")) {
          if (!/^\d+$/.test(entry)) continue;
          try {
            if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(env.stateDir)) {
              process.kill(Number(entry), "SIGKILL");
            }
          } catch {
            // gone
          }
        }
        await sleep(300);
        await env.teardown();
      }
    },
  };

  const waitHealthy = async () => {
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (serve.exitCode !== null) throw new Error(`bhatti serve exited:\n${output}`);
      try {
        const text = readFileSync(clientConfig, "utf8");
        (product as { adminKey: string }).adminKey = /auth_token: (bht_[0-9a-f]{64})/.exec(text)?.[1] ?? "";
        if (product.adminKey !== "") {
          const h = await product.thermal().client.health({}, { timeoutMs: 1000 });
          const gw = await product.http("GET", "/health");
          if (h.health?.ready === true && gw.status === 200) return;
        }
      } catch {
        // not yet
      }
      if (Date.now() > deadline) throw new Error(`bhatti serve did not become healthy:\n${output}`);
      await sleep(200);
    }
  };

  launch();
  try {
    await waitHealthy();
    const user = await product.http("POST", "/users", {
      body: {
        name: `thermal-${env.runId}`,
        limits: { creates_per_minute: 10_000, execs_per_minute: 100_000, max_sandboxes: 100 },
      },
    });
    if (user.status !== 201) throw new Error(`creating the test user: ${user.status} ${user.text}`);
    (product as { userKey: string }).userKey = user.json<{ api_key: string }>().api_key;
    writeFileSync(userConfig, `api_url: http://127.0.0.1:${port}\nauth_token: ${product.userKey}\n`, {
      mode: 0o600,
    });
  } catch (e) {
    await product.dispose().catch(() => undefined);
    throw e;
  }
  return product;
}

export interface SandboxJson {
  id: string;
  name: string;
  status: string;
  thermal?: string;
  thermal_since?: string;
  keep_hot: boolean;
}

/** Polls `GET /sandboxes/:id` (which never wakes anything) until `done` holds. */
export async function waitForSandbox(
  product: Product,
  id: string,
  done: (s: SandboxJson) => boolean,
  timeoutMs = 30_000,
): Promise<SandboxJson> {
  const deadline = Date.now() + timeoutMs;
  let last: SandboxJson | undefined;
  for (;;) {
    const res = await product.http("GET", `/sandboxes/${id}`);
    if (res.status === 200) {
      last = res.json<SandboxJson>();
      if (done(last)) return last;
    }
    if (Date.now() > deadline)
      throw new Error(`sandbox ${id} never got there; last: ${JSON.stringify(last)}`);
    await sleep(50);
  }
}

export async function exec(product: Product, id: string, cmd: string[]) {
  const res = await product.http("POST", `/sandboxes/${id}/exec`, { body: { cmd } });
  return {
    status: res.status,
    headers: res.headers,
    body: res.json<{ stdout: string; exit_code: number; error?: string }>(),
  };
}

export interface EventJson {
  id: number;
  type: string;
  sandbox_id: string;
  meta: Record<string, unknown>;
  ts: string;
}

/** Events of one sandbox, oldest first. */
export async function eventsOf(product: Product, id: string, typePrefix = ""): Promise<EventJson[]> {
  const res = await product.http(
    "GET",
    `/events?sandbox=${id}&limit=1000${typePrefix ? `&type=${typePrefix}` : ""}`,
  );
  if (res.status !== 200) throw new Error(`GET /events: ${res.status} ${res.text}`);
  return [...res.json<{ events: EventJson[] }>().events].sort((a, b) => a.id - b.id);
}

/** SIGKILLs serve's vmm and waits until serve has started a new one and it reports ready. */
export async function killVmmAndWaitReady(product: Product): Promise<void> {
  const vmmPid = product.childPid("services/vmm/dist");
  if (vmmPid === undefined) throw new Error("no vmm process");
  process.kill(vmmPid, "SIGKILL");
  const vmm = createServiceClient(VmmService, join(product.socketDir, "vmm.sock"), {
    defaultTimeoutMs: 2_000,
  });
  try {
    const deadline = Date.now() + 90_000;
    for (;;) {
      const pid = product.childPid("services/vmm/dist");
      if (pid !== undefined && pid !== vmmPid) {
        const h = await vmm.client.health({}).catch(() => undefined);
        if (h?.health?.ready === true) return;
      }
      if (Date.now() > deadline) throw new Error(`vmm did not come back\n${product.output().slice(-3000)}`);
      await sleep(100);
    }
  } finally {
    vmm.close();
  }
}
