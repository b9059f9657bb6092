import { once } from "node:events";
import { type AddressInfo, createServer } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createAgentClient } from "./agent-client.js";
import { AgentConnectionError } from "./agent-error.js";
import { agentLaunchArgv } from "./agent-launch.js";
import { waitReadyAttemptTimeoutMs } from "./wait-ready.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function freePort(): Promise<number> {
  const s = createServer().listen(0, "127.0.0.1");
  await once(s, "listening");
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe("agentLaunchArgv", () => {
  it("starts tini, then node through the packaged loader, then the agent in sandbox mode", () => {
    expect(agentLaunchArgv("/.bhatti", "/run/bhatti/agent.json")).toEqual([
      "/.bhatti/tini-static",
      "--",
      "/.bhatti/lib/ld-linux-x86-64.so.2",
      "--library-path",
      "/.bhatti/lib",
      "/.bhatti/node",
      "--max-semi-space-size=2",
      "--max-old-space-size=192",
      "/.bhatti/agent.mjs",
      "--config",
      "/run/bhatti/agent.json",
    ]);
    expect(agentLaunchArgv("/opt/b/", "/c.json")[0]).toBe("/opt/b/tini-static");
  });
});

describe("waitReady", () => {
  it("uses v1's per-attempt timeouts", () => {
    expect([1, 3, 4, 6, 7, 10, 11, 50].map(waitReadyAttemptTimeoutMs)).toEqual([
      100, 100, 250, 250, 500, 500, 2000, 2000,
    ]);
  });

  it("gives up after its time limit", async () => {
    const port = await freePort();
    const late = createAgentClient({
      control: { host: "127.0.0.1", port },
      forward: { host: "127.0.0.1", port },
      token: "t",
      pool: false,
    });
    cleanups.push(() => late.close());
    await expect(late.waitReady({ timeoutMs: 400 })).rejects.toBeInstanceOf(AgentConnectionError);
  });

  it("honours an AbortSignal", async () => {
    const port = await freePort();
    const c = createAgentClient({
      control: { host: "127.0.0.1", port },
      forward: { host: "127.0.0.1", port },
      token: "",
    });
    cleanups.push(() => c.close());
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    await expect(c.waitReady({ signal: controller.signal })).rejects.toThrow(/abort/i);
  });
});
