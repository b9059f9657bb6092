import { type Server, type Socket, connect, createServer } from "node:net";
import type { Duplex } from "node:stream";
import type { AgentClient } from "@bhatti/agent-client";
import { afterEach, describe, expect, it } from "vitest";
import type { WakeController } from "../wake/wake-controller.js";
import { createAppDialer } from "./app-dialer.js";

/** A loopback server that greets every connection with `name`. */
async function greeter(
  name: string,
  host = "127.0.0.1",
  port = 0,
): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => s.end(name));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no address");
  return { server, port: address.port };
}

/** A port on which nothing listens (bound, then closed). */
async function freePort(): Promise<number> {
  const { server, port } = await greeter("x");
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function firstBytes(socket: Duplex): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    socket.on("data", (d: Buffer) => {
      text += d.toString();
    });
    socket.once("end", () => {
      // Direct connections are half-open capable: close this side too, so the server can close.
      socket.destroy();
      resolve(text);
    });
    socket.once("error", reject);
  });
}

/**
 * The dialer's choice and memory with real loopback sockets: the "sandbox address" is a loopback
 * address, and the "agent's forward port" a loopback server that answers "agent". (The product
 * test test/proxy/proxy.test.ts checks both paths against a real sandbox.)
 */
describe("app dialer: direct at the sandbox's address, the agent when refused", () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  });

  const setup = async () => {
    const agentServer = await greeter("agent");
    servers.push(agentServer.server);
    const forwarded: number[] = [];
    const agent = {
      host: "127.0.0.1" as string | undefined,
      forward: async (port: number): Promise<Socket> => {
        forwarded.push(port);
        return connect({ host: "127.0.0.1", port: agentServer.port });
      },
    };
    const woken: string[] = [];
    const wake = {
      withAgent: <T>(sandboxId: string, op: (a: AgentClient) => Promise<T>) => {
        woken.push(sandboxId);
        return op(agent as unknown as AgentClient);
      },
    } as unknown as WakeController;
    let clock = 1_000_000;
    const dialer = createAppDialer(wake, { retryDirectMs: 30_000, now: () => clock });
    const advance = (ms: number) => {
      clock += ms;
    };
    return { agent, forwarded, woken, dialer, advance };
  };

  it("dials an app listening on the sandbox's address directly, after the wake", async () => {
    const { forwarded, woken, dialer } = await setup();
    const app = await greeter("direct");
    servers.push(app.server);
    expect(await firstBytes(await dialer.dial("sb-1", app.port))).toBe("direct");
    expect(forwarded).toEqual([]);
    expect(woken).toEqual(["sb-1"]);
  });

  it("a refused direct dial goes through the agent, is remembered, and is retried after the delay", async () => {
    const { forwarded, dialer, advance } = await setup();
    const port = await freePort();
    expect(await firstBytes(await dialer.dial("sb-1", port))).toBe("agent");
    expect(forwarded).toEqual([port]);
    // The app rebinds to the sandbox's address: within the delay the agent is still used...
    const app = await greeter("direct", "127.0.0.1", port);
    servers.push(app.server);
    expect(await firstBytes(await dialer.dial("sb-1", port))).toBe("agent");
    // ...another sandbox's same port is not affected by sb-1's refusal...
    expect(await firstBytes(await dialer.dial("sb-2", port))).toBe("direct");
    // ...and after the delay the direct dial is tried again and found.
    advance(30_001);
    expect(await firstBytes(await dialer.dial("sb-1", port))).toBe("direct");
    expect(forwarded).toEqual([port, port]);
  });

  it("a refusal is not remembered while nothing listens at all (an app still starting)", async () => {
    const { agent, forwarded, dialer } = await setup();
    const port = await freePort();
    const forward = agent.forward;
    // The agent finds nothing on 127.0.0.1 either: its forward fails.
    agent.forward = async (p: number) => {
      forwarded.push(p);
      throw new Error("dial tcp 127.0.0.1: connect: connection refused");
    };
    await expect(dialer.dial("sb-1", port)).rejects.toThrow(/connection refused/);
    agent.forward = forward;
    // The app comes up on 0.0.0.0: the very next dial goes to it directly.
    const app = await greeter("direct", "127.0.0.1", port);
    servers.push(app.server);
    expect(await firstBytes(await dialer.dial("sb-1", port))).toBe("direct");
    expect(forwarded).toEqual([port]);
  });

  it("unpublish (forget) and a new sandbox address drop the remembered refusal", async () => {
    const { agent, forwarded, dialer } = await setup();
    const port = await freePort();
    expect(await firstBytes(await dialer.dial("sb-1", port))).toBe("agent");
    const app = await greeter("direct", "127.0.0.1", port);
    servers.push(app.server);
    dialer.forget("sb-1", port);
    expect(await firstBytes(await dialer.dial("sb-1", port))).toBe("direct");

    const other = await freePort();
    expect(await firstBytes(await dialer.dial("sb-1", other))).toBe("agent");
    // Restored at another address (where the app listens): tried directly there at once.
    const moved = await greeter("moved", "127.0.0.2", other);
    servers.push(moved.server);
    agent.host = "127.0.0.2";
    expect(await firstBytes(await dialer.dial("sb-1", other))).toBe("moved");
    expect(forwarded).toEqual([port, other]);
  });

  it("an agent endpoint without an address (a Unix socket) always uses the agent", async () => {
    const { agent, forwarded, dialer } = await setup();
    const app = await greeter("direct");
    servers.push(app.server);
    agent.host = undefined;
    expect(await firstBytes(await dialer.dial("sb-1", app.port))).toBe("agent");
    expect(forwarded).toEqual([app.port]);
  });
});
