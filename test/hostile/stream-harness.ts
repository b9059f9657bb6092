import { readFileSync } from "node:fs";
import { type ClientRequest, type IncomingMessage, request } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { type AgentClient, createAgentClient } from "@bhatti/agent-client";
import { VmmService } from "@bhatti/proto";
import { createServiceClient } from "@bhatti/runtime";
import { join } from "node:path";
import type { Product } from "../thermal/product-harness.js";

/**
 * Helpers shared by the stream tests and the backpressure benchmark: requests through the
 * product's netns relay with any key, streams whose reading the test controls, the gateway's
 * memory, and root access to a sandbox's agent (the way sandbox root could reach it).
 */

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

async function relayPath(product: Product): Promise<string> {
  return ((await product.env.options.dialer.endpoint("127.0.0.1", product.port)) as { path: string }).path;
}

/** One request as `key` (the product's user key by default), body JSON. */
export async function httpAs(
  product: Product,
  method: string,
  path: string,
  options: { key?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const socketPath = await relayPath(product);
  const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
  const headers: Record<string, string> = {
    authorization: `Bearer ${options.key ?? product.userKey}`,
    ...options.headers,
  };
  if (payload !== undefined) {
    headers["content-type"] = "application/json";
    headers["content-length"] = String(payload.byteLength);
  }
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text: Buffer.concat(chunks).toString(),
        }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(payload);
  });
}

/**
 * A request whose response the caller reads (or stops reading): resolves once the status and
 * headers arrived, with the response paused. `close()` destroys the connection.
 */
export async function openStream(
  product: Product,
  method: string,
  path: string,
  options: { body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ req: ClientRequest; res: IncomingMessage; close(): void }> {
  const socketPath = await relayPath(product);
  const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
  const headers: Record<string, string> = { authorization: `Bearer ${product.userKey}`, ...options.headers };
  if (payload !== undefined) {
    headers["content-type"] = "application/json";
    headers["content-length"] = String(payload.byteLength);
  }
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers }, (res) => {
      res.pause();
      resolve({ req, res, close: () => req.destroy() });
    });
    req.on("error", reject);
    req.end(payload);
  });
}

/** Resident memory of a process, from /proc/<pid>/status (bytes). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for ${pid}`);
  return Number(kb) * 1024;
}

export function gatewayPid(product: Product): number {
  const pid = product.childPid("gateway/dist");
  if (pid === undefined) throw new Error("gateway process not found");
  return pid;
}

/** An exec through the REST API; the JSON result. */
export async function execJson(
  product: Product,
  id: string,
  cmd: string[],
  key?: string,
): Promise<{ status: number; exitCode: number; stdout: string; stderr: string; text: string }> {
  const r = await httpAs(product, "POST", `/sandboxes/${id}/exec`, {
    body: { cmd },
    ...(key !== undefined ? { key } : {}),
  });
  if (r.status !== 200) return { status: r.status, exitCode: -1, stdout: "", stderr: "", text: r.text };
  const body = JSON.parse(r.text) as { exit_code: number; stdout: string; stderr: string };
  return { status: 200, exitCode: body.exit_code, stdout: body.stdout, stderr: body.stderr, text: r.text };
}

/** Creates a busybox sandbox as `key`; returns its id. */
export async function createSandbox(product: Product, name: string, key?: string): Promise<string> {
  const r = await httpAs(product, "POST", "/sandboxes", {
    body: { name, image: "busybox" },
    ...(key !== undefined ? { key } : {}),
  });
  if (r.status !== 201) throw new Error(`create ${name}: ${r.status} ${r.text}`);
  return (JSON.parse(r.text) as { id: string }).id;
}

/** Creates a second user (another tenant) with generous limits; returns its API key. */
export async function createTenant(product: Product, name: string): Promise<string> {
  const r = await httpAs(product, "POST", "/users", {
    key: product.adminKey,
    body: { name, limits: { creates_per_minute: 1000, execs_per_minute: 100_000, max_sandboxes: 10 } },
  });
  if (r.status !== 201) throw new Error(`create user ${name}: ${r.status} ${r.text}`);
  return (JSON.parse(r.text) as { api_key: string }).api_key;
}

/**
 * A direct client to the sandbox's agent, with the sandbox's token, as the vmm describes it:
 * what a process holding root in the sandbox can do to its own agent, the test does from here
 * (`exec(..., { root: true })`).
 */
export async function rootAgent(
  product: Product,
  sandboxId: string,
): Promise<{ client: AgentClient; host: string }> {
  const vmm = createServiceClient(VmmService, join(product.socketDir, "vmm.sock"), {
    defaultTimeoutMs: 10_000,
  });
  try {
    const { sandbox } = await vmm.client.getSandboxStatus({ id: sandboxId });
    const ep = sandbox?.agent;
    if (ep === undefined) throw new Error(`sandbox ${sandboxId} has no agent endpoint`);
    const client = createAgentClient({
      control: await product.env.options.dialer.endpoint(ep.host, ep.controlPort),
      forward: await product.env.options.dialer.endpoint(ep.host, ep.forwardPort),
      token: ep.token,
      pool: false,
    });
    return { client, host: ep.host };
  } finally {
    vmm.close();
  }
}

/** Polls `read` until `done` holds for its value; returns it. Fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  read: () => Promise<T>,
  done: (v: T) => boolean,
  timeoutMs = 60_000,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await read();
    if (done(last)) return last;
    if (Date.now() > deadline)
      throw new Error(`${what}: not reached in ${timeoutMs} ms; last ${JSON.stringify(last)}`);
    await sleep(intervalMs);
  }
}
