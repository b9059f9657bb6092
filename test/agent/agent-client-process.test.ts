// The agent client against a real agent process (agent/dist/agent.js, started by
// @bhatti/agent/testing): waiting for an agent that starts late, and the connection pool across an
// agent restart. The client's pure parts are tested beside it, in packages/agent-client.
import { once } from "node:events";
import { type AddressInfo, createServer } from "node:net";
import { startAgentProcess } from "@bhatti/agent/testing";
import { createAgentClient } from "@bhatti/agent-client";
import { afterEach, describe, expect, it } from "vitest";

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

describe("waitReady", () => {
  it("keeps polling until an agent that starts late answers", async () => {
    // The client first meets "connection refused", then the agent once it listens.
    const [control, forward] = [await freePort(), await freePort()];
    const token = "late-token";
    const client = createAgentClient({
      control: { host: "127.0.0.1", port: control },
      forward: { host: "127.0.0.1", port: forward },
      token,
    });
    cleanups.push(() => client.close());
    const waiting = client.waitReady({ timeoutMs: 15_000 });
    await new Promise((r) => setTimeout(r, 300));
    const agent = await startAgentProcess({ token, controlPort: control, forwardPort: forward });
    cleanups.push(() => agent.stop());
    await waiting;
    expect((await client.exec(["echo", "up"])).stdout.toString()).toBe("up\n");
  });
});

describe("connection pool", () => {
  it("serves operations from pre-authenticated spares and survives an agent restart", async () => {
    const agent = await startAgentProcess();
    cleanups.push(() => agent.stop());
    const client = createAgentClient({
      control: agent.control,
      forward: agent.forward,
      token: agent.token,
      pool: { size: 2, idleMs: 10_000 },
    });
    cleanups.push(() => client.close());
    for (let i = 0; i < 5; i++)
      expect((await client.exec(["echo", String(i)])).stdout.toString()).toBe(`${i}\n`);

    // Restart the agent on the same ports: the spares die; the next call must still work.
    await agent.child.kill("SIGKILL");
    await once(agent.child, "exit");
    const again = await startAgentProcess({
      token: agent.token,
      controlPort: agent.control.port,
      forwardPort: agent.forward.port,
    });
    cleanups.push(() => again.stop());
    expect((await client.exec(["echo", "after-restart"])).stdout.toString()).toBe("after-restart\n");
  });
});

describe("idle spares and the agent's idle GC", () => {
  it("spare connections left open by the host pool do not hold off the agent's idle GC", async () => {
    const agent = await startAgentProcess({ nodeFlags: ["--trace-gc"] });
    cleanups.push(() => agent.stop());
    let out = "";
    agent.child.stdout?.on("data", (s: string) => {
      out += s;
    });
    const client = createAgentClient({
      control: agent.control,
      forward: agent.forward,
      token: agent.token,
      pool: { size: 2, idleMs: 60_000 },
    });
    cleanups.push(() => client.close());
    expect((await client.exec(["echo", "x"])).stdout.toString()).toBe("x\n");
    // The exec left two authenticated spares open for a minute; the agent's idle collector
    // (a full GC, reason "testing" in V8's trace) still runs about a second after the exec.
    const deadline = Date.now() + 20_000;
    while (!/Mark-Compact[^\n]*testing/.test(out)) {
      if (Date.now() > deadline) throw new Error(`no idle GC while spares were open:\n${out.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // The spares are still usable afterwards.
    expect((await client.exec(["echo", "y"])).stdout.toString()).toBe("y\n");
  });
});
