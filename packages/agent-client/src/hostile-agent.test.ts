import { once } from "node:events";
import { type AddressInfo, type Server, type Socket, createServer } from "node:net";
import { AgentLimits, FrameReader, FrameType, encodeFrame, encodeJsonFrame } from "@bhatti/agent-protocol";
import { afterEach, describe, expect, it } from "vitest";
import { type AgentClient, createAgentClient } from "./agent-client.js";
import { AgentProtocolError, AgentTimeoutError } from "./agent-error.js";

/**
 * A real TCP server speaking the framed protocol the way a hostile sandbox root could make its
 * agent speak it: it reads the client's request frame and answers what the test says (garbage,
 * wrong shapes, oversize frames, or nothing at all).
 */
type Reply = (socket: Socket, requestType: number) => void;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function hostileAgent(
  reply: Reply,
  operationTimeoutMs = 300,
): Promise<{ client: AgentClient; server: Server; open: () => number }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    // The client closing its side is what the tests look for: count the socket gone then.
    socket.on("end", () => socket.destroy());
    const reader = new FrameReader(socket);
    void (async () => {
      for (;;) {
        const frame = await reader.read().catch(() => null);
        if (frame === null) return;
        if (frame.type === FrameType.AUTH) continue;
        reply(socket, frame.type);
        return;
      }
    })();
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  const client = createAgentClient({
    control: { host: "127.0.0.1", port },
    forward: { host: "127.0.0.1", port },
    token: "t",
    pool: false,
    operationTimeoutMs,
  });
  cleanups.push(async () => {
    client.close();
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  return { client, server, open: () => sockets.size };
}

const json =
  (type: number, value: unknown): Reply =>
  (socket) =>
    socket.write(encodeJsonFrame(type, value));
const raw =
  (type: number, payload: string): Reply =>
  (socket) =>
    socket.write(encodeFrame(type, payload));

describe("a hostile agent's replies", () => {
  it("never answering: each request operation fails with AgentTimeoutError at its deadline and frees the connection", async () => {
    const { client, open } = await hostileAgent(() => {});
    const ops: Array<[string, () => Promise<unknown>]> = [
      ["listSessions", () => client.listSessions()],
      ["stat", () => client.stat("/x")],
      ["listDir", () => client.listDir("/")],
      ["activity", () => client.activity()],
      ["readFile", () => client.readFile("/x")],
      ["writeFile", () => client.writeFile("/x", "data")],
      ["killSession", () => client.killSession("s")],
      ["execDetached", () => client.execDetached(["true"])],
      ["attachSession", () => client.attachSession("s")],
      ["openPipedSession", () => client.openPipedSession(["sh"])],
      ["forward", () => client.forward(80)],
    ];
    for (const [name, op] of ops) {
      const err = await op().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, name).toBeInstanceOf(AgentTimeoutError);
    }
    // Every connection the client opened was closed by the deadline.
    await expect.poll(open, { timeout: 5_000 }).toBe(0);
  });

  it("a per-call timeout overrides the client's", async () => {
    // The client's own deadline (an hour) is past the test's timeout: only the per-call one can end it.
    const { client } = await hostileAgent(() => {}, 3_600_000);
    await expect(client.stat("/x", { timeoutMs: 50 })).rejects.toBeInstanceOf(AgentTimeoutError);
  });

  it("a file whose content stops mid-way fails at the deadline instead of hanging the consumer", async () => {
    const { client } = await hostileAgent((socket) => {
      socket.write(encodeJsonFrame(FrameType.FILE_READ_RESP, { size: 10, mode: "0644" }));
      socket.write(encodeFrame(FrameType.STDOUT, "hello"));
    });
    const file = await client.readFile("/x");
    const parts: Buffer[] = [];
    await expect(
      (async () => {
        for await (const chunk of file.content) parts.push(chunk);
      })(),
    ).rejects.toBeInstanceOf(AgentTimeoutError);
    expect(Buffer.concat(parts).toString()).toBe("hello");
  });

  it("invalid JSON is an AgentProtocolError", async () => {
    const { client } = await hostileAgent(raw(FrameType.FILE_STAT_RESP, "{not json"));
    await expect(client.stat("/x")).rejects.toBeInstanceOf(AgentProtocolError);
  });

  it.each([
    ["a mode that is not octal (would break an HTTP header)", { size: 1, mode: "06\r\nx: y" }],
    ["a negative size", { size: -1, mode: "0644" }],
    ["a fractional size", { size: 1.5, mode: "0644" }],
    ["a size past 2^53", { size: 2 ** 60, mode: "0644" }],
    ["a string size", { size: "12", mode: "0644" }],
    ["no fields", {}],
    ["an array", [1, 2]],
  ])("a file header with %s is an AgentProtocolError", async (_name, header) => {
    const { client } = await hostileAgent(json(FrameType.FILE_READ_RESP, header));
    await expect(client.readFile("/x")).rejects.toBeInstanceOf(AgentProtocolError);
  });

  it("a stat reply of the wrong shape is an AgentProtocolError", async () => {
    const { client } = await hostileAgent(
      json(FrameType.FILE_STAT_RESP, { name: "x", size: 1, mode: "0644", is_dir: "yes", mtime: 0 }),
    );
    await expect(client.stat("/x")).rejects.toBeInstanceOf(AgentProtocolError);
  });

  it("a listing with one bad entry among good ones is an AgentProtocolError", async () => {
    const good = { name: "a", size: 1, mode: "0644", is_dir: false, mtime: 1 };
    const { client } = await hostileAgent(
      json(FrameType.FILE_LS_RESP, [good, good, { ...good, mode: "rwx" }]),
    );
    await expect(client.listDir("/")).rejects.toBeInstanceOf(AgentProtocolError);
  });

  it("a listing as large as one frame allows is bounded by the frame limit; a larger frame is refused", async () => {
    // The length field claims 64 MiB: the reader refuses it before buffering it.
    const { client } = await hostileAgent((socket) => {
      const head = Buffer.alloc(5);
      head.writeUInt32BE(64 * 1024 * 1024, 0);
      head[4] = FrameType.FILE_LS_RESP;
      socket.write(head);
    });
    await expect(client.listDir("/")).rejects.toBeInstanceOf(AgentProtocolError);
  });

  it("a listing longer than the agent's own cap is an AgentProtocolError", async () => {
    const entry = { name: "a", size: 1, mode: "0644", is_dir: false, mtime: 1 };
    const { client } = await hostileAgent(
      json(
        FrameType.FILE_LS_RESP,
        Array.from({ length: AgentLimits.maxListEntries + 2 }, () => entry),
      ),
    );
    await expect(client.listDir("/")).rejects.toBeInstanceOf(AgentProtocolError);
  });

  it("a session list of the wrong shape, and the wrong frame type, are AgentProtocolErrors", async () => {
    const a = await hostileAgent(json(FrameType.EXEC_LIST_RESP, [{ session_id: 1 }]));
    await expect(a.client.listSessions()).rejects.toBeInstanceOf(AgentProtocolError);
    const b = await hostileAgent(json(FrameType.FILE_LS_RESP, []));
    await expect(b.client.listSessions()).rejects.toBeInstanceOf(AgentProtocolError);
  });

  it("well-formed replies still pass (null listings included)", async () => {
    const a = await hostileAgent(raw(FrameType.FILE_LS_RESP, "null"));
    expect(await a.client.listDir("/")).toEqual([]);
    const entry = { name: "a", size: 3, mode: "0755", is_dir: true, mtime: 1_700_000_000 };
    const b = await hostileAgent(json(FrameType.FILE_STAT_RESP, entry));
    expect(await b.client.stat("/a")).toEqual(entry);
  });
});
