// The agent client against a real agent process (agent/dist/agent.js, started by
// @bhatti/agent/testing): waiting for an agent that starts late, and the connection pool across an
// agent restart. The client's pure parts are tested beside it, in packages/agent-client.
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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

/** Established connections whose local end is the agent's port (the agent's side of each). */
function agentSideConnections(port: number): number {
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .slice(1)
    .filter((line) => {
      const f = line.trim().split(/\s+/);
      return f[1]?.endsWith(hexPort) === true && f[3] === "01";
    }).length;
}

async function waitFor(
  what: string,
  cond: () => boolean,
  detail?: () => string,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${detail?.() ?? ""}`);
    await new Promise((r) => setTimeout(r, 20));
  }
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

  it("keeps the connections of finished operations for the next ones; a reader stopped early and a command cut short close theirs", async () => {
    const agent = await startAgentProcess();
    cleanups.push(() => agent.stop());
    const client = createAgentClient({
      control: agent.control,
      forward: agent.forward,
      token: agent.token,
      pool: { size: 2, idleMs: 30_000 },
    });
    cleanups.push(() => client.close());
    const port = agent.control.port;
    const dir = mkdtempSync(join(tmpdir(), "bhatti-test-pool-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, "file.txt");
    for (let i = 0; i < 4; i++) {
      expect((await client.exec(["echo", String(i)])).stdout.toString()).toBe(`${i}\n`);
      await client.writeFile(file, `v${i}`);
      const read = await client.readFileBuffer(file);
      expect(read.data.toString()).toBe(`v${i}`);
      async function* body() {
        yield Buffer.from(`s${i}`);
      }
      await client.writeFileStream(file, body(), 2);
      expect((await client.stat(file)).size).toBe(2);
      const proc = await client.execStream(["echo", "streamed"]);
      proc.closeStdin();
      const events = [];
      for await (const ev of proc) events.push(ev.type);
      expect(events).toEqual(["stdout", "exit"]);
      // A reader that stops before the end closes its connection at once (not a release).
      const stream = await client.readFile("/etc/hostname");
      await stream.content[Symbol.asyncIterator]().return?.();
    }
    // One after another, the operations share the pool's two connections (kept between
    // operations, REUSE_REQ); the early-stopped readers closed theirs (replaced).
    await waitFor(
      "only the pool's two",
      () => agentSideConnections(port) === 2,
      () => `: ${agentSideConnections(port)}`,
    );
    // A burst takes those two and dials the rest; all of them are kept for the next burst.
    const burst = () => Promise.all(Array.from({ length: 8 }, (_, i) => client.exec(["echo", `b${i}`])));
    const first = await burst();
    expect(first.map((r) => r.stdout.toString())).toEqual(Array.from({ length: 8 }, (_, i) => `b${i}\n`));
    // The burst's 8 and at most the pool's 2 spares dialed while it was empty; the next bursts
    // dial nothing (the spares of the first have landed by the end of the second).
    await waitFor("the burst's connections kept", () => agentSideConnections(port) >= 8);
    await burst();
    const kept = agentSideConnections(port);
    expect(kept).toBeLessThanOrEqual(10);
    await burst();
    expect(agentSideConnections(port)).toBe(kept);
    // A command still running holds one of them; cut short, its connection is closed, not kept.
    const running = await client.execStream(["sleep", "30"]);
    expect(agentSideConnections(port)).toBe(kept);
    running.close();
    await waitFor("one connection fewer", () => agentSideConnections(port) === kept - 1);
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
