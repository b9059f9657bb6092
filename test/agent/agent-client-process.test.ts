// The agent client against a real agent process (agent/dist/agent.js, started by
// @bhatti/agent/testing): waiting for an agent that starts late, and the connection pool across an
// agent restart. The client's pure parts are tested beside it, in packages/agent-client.
import { once } from "node:events";
import { type AddressInfo, type Socket, connect, createServer } from "node:net";
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

/** A loopback relay to `target` that records, per accepted connection in order, what the client sent. */
async function recordingRelay(target: { host: string; port: number }) {
  const sent: string[] = [];
  const closed: boolean[] = [];
  const sockets = new Set<Socket>();
  // Half-open both ways: the client half-closes after its request and still reads the reply.
  const server = createServer({ allowHalfOpen: true }, (client) => {
    const i = sent.push("") - 1;
    closed.push(false);
    const upstream = connect({ port: target.port, host: target.host, allowHalfOpen: true });
    sockets.add(client).add(upstream);
    client.on("data", (d: Buffer) => {
      sent[i] += d.toString("latin1");
    });
    client.pipe(upstream).pipe(client);
    const done = () => {
      closed[i] = true;
      client.destroy();
      upstream.destroy();
    };
    client.on("close", done).on("error", done);
    upstream.on("close", done).on("error", done);
  }).listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    endpoint: { host: "127.0.0.1", port: (server.address() as AddressInfo).port },
    sent,
    closed,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe("pre-dialed spares (warm wake)", () => {
  it("an operation takes over a spare dial still in flight instead of dialing another", async () => {
    const agent = await startAgentProcess();
    cleanups.push(() => agent.stop());
    const relay = await recordingRelay(agent.control);
    cleanups.push(() => relay.close());
    const client = createAgentClient({
      control: relay.endpoint,
      forward: agent.forward,
      token: agent.token,
      pool: { size: 1, idleMs: 10_000 },
    });
    cleanups.push(() => client.close());
    // Same tick: the pre-dial has not connected yet when the exec asks for a connection.
    client.prewarmPool();
    const result = await client.exec(["echo", "taken-over"]);
    expect(result.stdout.toString()).toBe("taken-over\n");
    // The first connection the agent saw (the pre-dial) carried the exec.
    expect(relay.sent[0]).toContain("taken-over");
  });

  it("a dial in flight when the pool is drained (a restore) is never used; the operation dials afresh", async () => {
    const agent = await startAgentProcess();
    cleanups.push(() => agent.stop());
    const relay = await recordingRelay(agent.control);
    cleanups.push(() => relay.close());
    const client = createAgentClient({
      control: relay.endpoint,
      forward: agent.forward,
      token: agent.token,
      pool: { size: 1, idleMs: 10_000 },
    });
    cleanups.push(() => client.close());
    client.prewarmPool();
    client.drainPool();
    const result = await client.exec(["echo", "fresh"]);
    expect(result.stdout.toString()).toBe("fresh\n");
    expect(relay.sent.length).toBeGreaterThanOrEqual(2);
    expect(relay.sent[0]).not.toContain("fresh");
    expect(relay.sent.slice(1).some((s) => s.includes("fresh"))).toBe(true);
    // The drained pre-dial is closed once it connects, not left open.
    const deadline = Date.now() + 10_000;
    while (relay.closed[0] !== true) {
      if (Date.now() > deadline) throw new Error("the drained pre-dial stayed open");
      await new Promise((r) => setTimeout(r, 20));
    }
  });

  it("pre-dials into a stopped (SIGSTOP) agent complete once it runs again, and the exec uses one", async () => {
    const agent = await startAgentProcess();
    cleanups.push(() => agent.stop());
    const client = createAgentClient({
      control: agent.control,
      forward: agent.forward,
      token: agent.token,
      pool: { size: 2, idleMs: 10_000 },
    });
    cleanups.push(() => client.close());
    expect((await client.exec(["echo", "before"])).stdout.toString()).toBe("before\n");
    agent.child.kill("SIGSTOP");
    let resumed = false;
    cleanups.push(() => {
      if (!resumed) agent.child.kill("SIGCONT");
    });
    client.prewarmPool();
    const pending = client.exec(["echo", "thawed"]);
    agent.child.kill("SIGCONT");
    resumed = true;
    expect((await pending).stdout.toString()).toBe("thawed\n");
  });
});
