import { once } from "node:events";
import { type AddressInfo, type Server, type Socket, createServer } from "node:net";
import { type AgentClient, AgentError, createAgentClient } from "@bhatti/agent-client";
import { FrameType } from "@bhatti/agent-protocol";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgentProcess } from "../testing/agent-process.js";
import { type RawConnection, rawConnect, textOf } from "../testing/raw-connection.js";

let agent: AgentProcess;
let client: AgentClient;

beforeAll(async () => {
  agent = await startAgentProcess({ authTimeoutMs: 300 });
  client = createAgentClient({ control: agent.control, forward: agent.forward, token: agent.token });
});

afterAll(async () => {
  client?.close();
  await agent?.stop();
});

async function expectServing(): Promise<void> {
  expect((await client.exec(["echo", "alive"])).stdout.toString()).toBe("alive\n");
  expect(agent.child.exitCode).toBeNull();
}

/** The single reply of a connection: one ERROR frame followed by a clean close. */
async function expectErrorThenClose(conn: RawConnection, text: string | RegExp): Promise<void> {
  const frames = await conn.readAll(5_000);
  expect(frames.map((f) => f.type)).toEqual([FrameType.ERROR]);
  if (typeof text === "string") expect(textOf(frames[0])).toBe(text);
  else expect(textOf(frames[0])).toMatch(text);
  conn.close();
}

describe("auth", () => {
  it("a wrong token, a missing AUTH, or a non-AUTH first frame get 'auth required' and a close", async () => {
    const wrong = await rawConnect(agent.control, "0".repeat(32));
    wrong.sendJson(FrameType.EXEC_REQ, { argv: ["true"] });
    await expectErrorThenClose(wrong, "auth required");

    const skipped = await rawConnect(agent.control);
    skipped.sendJson(FrameType.EXEC_REQ, { argv: ["true"] });
    await expectErrorThenClose(skipped, "auth required");

    const prefix = await rawConnect(agent.control, agent.token.slice(0, 31));
    await expectErrorThenClose(prefix, "auth required");
    await expectServing();
  });

  it("AUTH must arrive before the (configurable) deadline", async () => {
    const silent = await rawConnect(agent.control);
    await expectErrorThenClose(silent, "auth required");
    const silentForward = await rawConnect(agent.forward);
    await expectErrorThenClose(silentForward, "auth required");
  });

  it("the forward port requires AUTH too", async () => {
    const conn = await rawConnect(agent.forward, "bad");
    conn.sendJson(FrameType.FWD_REQ, { port: 1 });
    await expectErrorThenClose(conn, "auth required");
  });

  it("a client with the wrong token gets AgentError", async () => {
    const bad = createAgentClient({
      control: agent.control,
      forward: agent.forward,
      token: "x".repeat(32),
      pool: false,
    });
    try {
      const err = await bad.exec(["true"]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AgentError);
      expect((err as AgentError).agentMessage).toBe("auth required");
      await expect(bad.waitReady({ timeoutMs: 2_000 })).rejects.toThrow("agent error: auth required");
    } finally {
      bad.close();
    }
  });
});

describe("bad input: an ERROR frame, a clean close, the agent keeps running", () => {
  it("an unexpected first frame type", async () => {
    const conn = await rawConnect(agent.control, agent.token);
    conn.send(FrameType.KILL);
    await expectErrorThenClose(conn, "unexpected frame type 0x07");
    const unknown = await rawConnect(agent.control, agent.token);
    unknown.send(0xee, "x");
    await expectErrorThenClose(unknown, "unexpected frame type 0xee");
    await expectServing();
  });

  it("an oversize frame and a zero-length frame", async () => {
    const big = await rawConnect(agent.control, agent.token);
    big.socket.write(Buffer.from([0x00, 0x10, 0x00, 0x01, FrameType.EXEC_REQ]));
    await expectErrorThenClose(big, "frame too large: 1048577 > 1048576");
    const zero = await rawConnect(agent.control, agent.token);
    zero.socket.write(Buffer.from([0, 0, 0, 0]));
    await expectErrorThenClose(zero, "invalid frame: length is 0");
    await expectServing();
  });

  it("malformed JSON, a bad argv, a bad kill request, a negative write size", async () => {
    const cases: Array<[number, string, string | RegExp]> = [
      [FrameType.EXEC_REQ, "{", /^bad exec request: /],
      [FrameType.EXEC_REQ, '{"argv":"ls"}', "bad exec request: argv must be an array of strings"],
      [FrameType.EXEC_REQ, '{"argv":[]}', "empty argv"],
      [FrameType.EXEC_KILL, "nope", "bad kill request"],
      [FrameType.EXEC_KILL, '{"session_id":"s424242"}', "session not found"],
      [FrameType.FILE_WRITE_REQ, '{"path":"/tmp/x","size":-5}', "file size must be >= 0"],
      [FrameType.FILE_READ_REQ, '{"path":5}', /^bad request: /],
    ];
    for (const [type, payload, text] of cases) {
      const conn = await rawConnect(agent.control, agent.token);
      conn.send(type, payload);
      await expectErrorThenClose(conn, text);
    }
    await expectServing();
  });

  it("refuses the 51st concurrent control connection", async () => {
    const open: RawConnection[] = [];
    try {
      for (let i = 0; i < 50; i++) open.push(await rawConnect(agent.control, agent.token));
      // Each of the 50 is authenticated and idle: prove the agent has accepted them all.
      await new Promise((r) => setTimeout(r, 100));
      const extra = await rawConnect(agent.control, agent.token);
      await expectErrorThenClose(extra, "connection limit exceeded");
    } finally {
      for (const c of open) c.close();
    }
    // Slots are released when connections close.
    let ok = false;
    for (let i = 0; i < 50 && !ok; i++) {
      ok = await client.exec(["true"]).then(
        () => true,
        () => false,
      );
      if (!ok) await new Promise((r) => setTimeout(r, 20));
    }
    expect(ok).toBe(true);
  });

  it("random and truncated input never crashes the agent; other connections keep being served (fuzz)", async () => {
    const session = await client.openPipedSession(["cat"]);
    const it = session[Symbol.asyncIterator]();
    const frameArb = fc.record({
      type: fc.constantFrom(...Object.values(FrameType), 0x00, 0x7f, 0xff),
      payload: fc.oneof(
        fc.uint8Array({ maxLength: 64 }),
        fc.json().map((j) => new TextEncoder().encode(j)),
      ),
    });
    const inputArb = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 200 }),
      fc.tuple(fc.array(frameArb, { maxLength: 4 }), fc.nat(400)).map(([frames, cut]) => {
        const bytes = Buffer.concat([
          Buffer.from([0, 0, 0, 33, FrameType.AUTH]),
          Buffer.from(agent.token),
          ...frames.map((f) => {
            const b = Buffer.alloc(5 + f.payload.byteLength);
            b.writeUInt32BE(1 + f.payload.byteLength, 0);
            b[4] = f.type;
            b.set(f.payload, 5);
            return b;
          }),
        ]);
        return new Uint8Array(bytes.subarray(0, 37 + cut));
      }),
    );
    await fc.assert(
      fc.asyncProperty(inputArb, fc.boolean(), async (bytes, halfClose) => {
        const conn = await rawConnect(agent.control);
        conn.socket.write(bytes);
        if (halfClose) conn.socket.end();
        await new Promise((r) => setTimeout(r, 2));
        conn.close();
      }),
      { numRuns: 150 },
    );
    await expectServing();
    await session.write("still-here\n");
    let echoed = "";
    while (!echoed.includes("still-here")) {
      const next = await it.next();
      if (next.done || next.value.type === "exit") break;
      echoed += next.value.data.toString();
    }
    expect(echoed).toContain("still-here");
    await client.killSession(session.sessionId);
  }, 60_000);
});

describe("forward", () => {
  let target: Server;
  let targetPort: number;

  beforeAll(async () => {
    // Echoes every byte; on EOF writes "total=<n>" and closes (tests the half-close).
    target = createServer({ allowHalfOpen: true }, (s: Socket) => {
      let total = 0;
      s.on("data", (d: Buffer) => {
        total += d.byteLength;
        s.write(d);
      });
      s.on("end", () => s.end(`total=${total}`));
      s.on("error", () => {});
    });
    target.listen(0, "127.0.0.1");
    await once(target, "listening");
    targetPort = (target.address() as AddressInfo).port;
  });

  afterAll(() => {
    target?.close();
  });

  it("relays raw bytes both ways, large payloads intact, and passes the half-close on", async () => {
    const sock = await client.forward(targetPort);
    const payload = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
    const received: Buffer[] = [];
    sock.on("data", (d: Buffer) => received.push(d));
    const ended = once(sock, "end");
    sock.end(payload);
    await ended;
    sock.destroy();
    const all = Buffer.concat(received);
    expect(all.subarray(0, payload.length).equals(payload)).toBe(true);
    expect(all.subarray(payload.length).toString()).toBe(`total=${payload.length}`);
  });

  it("a refused port gets a FWD_RESP error, in v1's words", async () => {
    const probe = createServer().listen(0, "127.0.0.1");
    await once(probe, "listening");
    const freePort = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    await expect(client.forward(freePort)).rejects.toThrow(
      `agent error: dial tcp 127.0.0.1:${freePort}: connect: connection refused`,
    );
    const raw = await rawConnect(agent.forward, agent.token);
    raw.sendJson(FrameType.FWD_REQ, { port: freePort });
    const frames = await raw.readAll();
    expect(frames.map((f) => f.type)).toEqual([FrameType.FWD_RESP]);
    expect(JSON.parse(textOf(frames[0]))).toEqual({
      status: "error",
      message: `dial tcp 127.0.0.1:${freePort}: connect: connection refused`,
    });
  });

  it("anything but FWD_REQ first is refused", async () => {
    const raw = await rawConnect(agent.forward, agent.token);
    raw.sendJson(FrameType.EXEC_REQ, { argv: ["true"] });
    await expectErrorThenClose(raw, "expected FWD_REQ, got 0x10");
    const bad = await rawConnect(agent.forward, agent.token);
    bad.sendJson(FrameType.FWD_REQ, { port: 70000 });
    const frames = await bad.readAll();
    expect(frames[0]!.type).toBe(FrameType.FWD_RESP);
    expect(JSON.parse(textOf(frames[0]))).toMatchObject({ status: "error" });
  });
});
