// waitAgentAnswers (the vmm's readiness wait after a restore) against a real agent process
// (agent/dist/agent.js, started by @bhatti/agent/testing): it waits for an agent that listens
// late, fails at once on a wrong token, gives up after its time limit, and honours an abort.
import { once } from "node:events";
import { type AddressInfo, createServer } from "node:net";
import { startAgentProcess } from "@bhatti/agent/testing";
import { AgentConnectionError, AgentError, createAgentClient } from "@bhatti/agent-client";
import { waitAgentAnswers } from "@bhatti/service-vmm/gvisor";
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

const clientFor = (control: number, forward: number, token: string) => {
  const client = createAgentClient({
    control: { host: "127.0.0.1", port: control },
    forward: { host: "127.0.0.1", port: forward },
    token,
    pool: false,
  });
  cleanups.push(() => client.close());
  return client;
};

describe("waitAgentAnswers", () => {
  it("keeps trying until an agent that starts late answers", async () => {
    const [control, forward] = [await freePort(), await freePort()];
    const token = "late-token";
    const client = clientFor(control, forward, token);
    const waiting = waitAgentAnswers(client, { timeoutMs: 15_000, signal: new AbortController().signal });
    await new Promise((r) => setTimeout(r, 300));
    const agent = await startAgentProcess({ token, controlPort: control, forwardPort: forward });
    cleanups.push(() => agent.stop());
    await waiting;
    expect((await client.exec(["echo", "up"])).stdout.toString()).toBe("up\n");
  });

  it("fails at once on a wrong token instead of waiting out its limit", async () => {
    const agent = await startAgentProcess();
    cleanups.push(() => agent.stop());
    const client = clientFor(agent.control.port, agent.forward.port, "not-the-token");
    // A limit far above the test's own timeout: only failing fast passes.
    await expect(
      waitAgentAnswers(client, { timeoutMs: 600_000, signal: new AbortController().signal }),
    ).rejects.toBeInstanceOf(AgentError);
  });

  it("gives up after its time limit when nothing answers", async () => {
    const client = clientFor(await freePort(), await freePort(), "t");
    const e = await waitAgentAnswers(client, { timeoutMs: 400, signal: new AbortController().signal }).catch(
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(AgentConnectionError);
    expect((e as AgentConnectionError).message).toMatch(/agent not ready after 400 ms/);
  });

  it("stops at once when its signal aborts", async () => {
    const client = clientFor(await freePort(), await freePort(), "t");
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("sandbox exited")), 50);
    await expect(waitAgentAnswers(client, { timeoutMs: 600_000, signal: controller.signal })).rejects.toThrow(
      "sandbox exited",
    );
  });
});
