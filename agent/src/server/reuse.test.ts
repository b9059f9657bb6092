// Connections kept between operations (REUSE_REQ), at the real agent process: the frames by
// hand, then the host client's pool through a counting relay (and one that answers REUSE_REQ
// as an agent older than it does).
import { once } from "node:events";
import { type AddressInfo, type Server, type Socket, connect, createServer } from "node:net";
import { type AgentClient, createAgentClient } from "@bhatti/agent-client";
import {
  FrameDecoder,
  FrameType,
  decodeExitPayload,
  encodeFrame,
  unexpectedFrameText,
} from "@bhatti/agent-protocol";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type AgentProcess, startAgentProcess } from "../testing/agent-process.js";
import { type RawConnection, rawConnect, textOf } from "../testing/raw-connection.js";

let agent: AgentProcess;
const cleanups: Array<() => void | Promise<void>> = [];

beforeAll(async () => {
  agent = await startAgentProcess();
});
afterAll(async () => {
  await agent?.stop();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A kept connection: AUTH, REUSE_REQ, and its REUSE_RESP read. */
async function keptConnection(): Promise<RawConnection> {
  const conn = await rawConnect(agent.control, agent.token);
  cleanups.push(() => conn.close());
  conn.send(FrameType.REUSE_REQ);
  const resp = await conn.read();
  expect(resp?.type).toBe(FrameType.REUSE_RESP);
  return conn;
}

/** Frames up to and including EXIT (or an ERROR). */
async function untilExit(conn: RawConnection): Promise<{ stdout: string; exit: number | undefined }> {
  let stdout = "";
  for (;;) {
    const f = await conn.read();
    if (f === null) throw new Error("closed before EXIT");
    if (f.type === FrameType.STDOUT) stdout += f.payload.toString();
    else if (f.type === FrameType.EXIT) return { stdout, exit: decodeExitPayload(f.payload) };
    else if (f.type === FrameType.ERROR) throw new Error(`ERROR ${textOf(f)}`);
  }
}

/** Resolves true if the peer closed within `ms`, false if the connection is still open. */
async function closedWithin(conn: RawConnection, ms: number): Promise<boolean> {
  try {
    return (await conn.read(ms)) === null;
  } catch {
    return false;
  }
}

describe("a kept connection (REUSE_REQ), frame by frame", () => {
  it("serves one request after another: exec, write, read, stat, listing, activity", async () => {
    const conn = await keptConnection();
    conn.sendJson(FrameType.EXEC_REQ, { argv: ["echo", "one"] });
    conn.send(FrameType.STDIN_EOF);
    expect(await untilExit(conn)).toEqual({ stdout: "one\n", exit: 0 });

    const path = `${agent.workspace}/kept.txt`;
    conn.sendJson(FrameType.FILE_WRITE_REQ, { path, mode: "0644", size: 5 });
    conn.send(FrameType.STDIN, "hello");
    expect((await conn.read())?.type).toBe(FrameType.FILE_WRITE_RESP);

    conn.sendJson(FrameType.FILE_READ_REQ, { path });
    expect((await conn.read())?.type).toBe(FrameType.FILE_READ_RESP);
    expect(await untilExit(conn)).toEqual({ stdout: "hello", exit: 0 });

    conn.sendJson(FrameType.FILE_STAT_REQ, { path });
    const stat = await conn.read();
    expect(stat?.type).toBe(FrameType.FILE_STAT_RESP);
    expect(JSON.parse(textOf(stat))).toMatchObject({ size: 5 });

    conn.sendJson(FrameType.FILE_LS_REQ, { path: agent.workspace });
    const ls = await conn.read();
    expect(ls?.type).toBe(FrameType.FILE_LS_RESP);
    expect(textOf(ls)).toContain("kept.txt");

    conn.send(FrameType.ACTIVITY_REQ);
    expect((await conn.read())?.type).toBe(FrameType.ACTIVITY_RESP);

    // Still open, and still serving.
    expect(await closedWithin(conn, 200)).toBe(false);
    conn.sendJson(FrameType.EXEC_REQ, { argv: ["echo", "two"] });
    conn.send(FrameType.STDIN_EOF);
    expect(await untilExit(conn)).toEqual({ stdout: "two\n", exit: 0 });
  });

  it("an exec's stdin ends at STDIN_EOF; input the command never read is not taken for a request", async () => {
    const conn = await keptConnection();
    conn.sendJson(FrameType.EXEC_REQ, { argv: ["cat"] });
    conn.send(FrameType.STDIN, "piped ");
    conn.send(FrameType.STDIN, "input");
    conn.send(FrameType.STDIN_EOF);
    expect(await untilExit(conn)).toEqual({ stdout: "piped input", exit: 0 });

    // `true` exits at once; the input sent after its EXIT still belongs to it, up to STDIN_EOF.
    conn.sendJson(FrameType.EXEC_REQ, { argv: ["true"] });
    expect(await untilExit(conn)).toEqual({ stdout: "", exit: 0 });
    conn.sendJson(FrameType.STDIN, { argv: ["echo", "not a request"] });
    conn.send(FrameType.STDIN_EOF);
    conn.sendJson(FrameType.EXEC_REQ, { argv: ["echo", "next"] });
    conn.send(FrameType.STDIN_EOF);
    expect(await untilExit(conn)).toEqual({ stdout: "next\n", exit: 0 });
  });

  it("an ERROR ends it, as does a half-close from the host after its operation", async () => {
    const failing = await keptConnection();
    failing.sendJson(FrameType.FILE_READ_REQ, { path: `${agent.workspace}/missing` });
    const frames = await failing.readAll(5_000);
    expect(frames.map((f) => f.type)).toEqual([FrameType.ERROR]);

    const halfClosed = await keptConnection();
    halfClosed.sendJson(FrameType.EXEC_REQ, { argv: ["cat"] });
    halfClosed.send(FrameType.STDIN, "last");
    halfClosed.socket.end();
    expect(await untilExit(halfClosed)).toEqual({ stdout: "last", exit: 0 });
    expect(await closedWithin(halfClosed, 5_000)).toBe(true);
  });

  it("a detached exec is the connection's last operation; REUSE_REQ is only taken first", async () => {
    const detached = await keptConnection();
    detached.sendJson(FrameType.EXEC_REQ, { argv: ["true"], detach: true });
    const frames = await detached.readAll(5_000);
    expect(frames.map((f) => f.type)).toEqual([FrameType.STDOUT, FrameType.EXIT]);

    const twice = await keptConnection();
    twice.send(FrameType.REUSE_REQ);
    const again = await twice.readAll(5_000);
    expect(again.map(textOf)).toEqual([unexpectedFrameText(FrameType.REUSE_REQ)]);
  });

  it("without REUSE_REQ a connection serves one operation, as in v1", async () => {
    const conn = await rawConnect(agent.control, agent.token);
    cleanups.push(() => conn.close());
    conn.send(FrameType.ACTIVITY_REQ);
    expect((await conn.readAll(5_000)).map((f) => f.type)).toEqual([FrameType.ACTIVITY_RESP]);
  });
});

/**
 * A TCP relay in front of the agent's control port that counts the connections made through
 * it and the REUSE_REQ frames sent on them. `old`: it answers REUSE_REQ (and drops the
 * connection) as an agent without it does, so the client meets a v1-style agent.
 */
async function countingRelay(old = false) {
  const sockets = new Set<Socket>();
  const stats = { connections: 0, reuseRequests: 0 };
  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    stats.connections++;
    const upstream = connect({ ...agent.control, allowHalfOpen: true });
    sockets.add(client).add(upstream);
    const decoder = new FrameDecoder();
    client.on("data", (chunk: Buffer) => {
      decoder.push(chunk);
      for (let f = decoder.next(); f !== undefined; f = decoder.next()) {
        if (f.type === FrameType.REUSE_REQ) {
          stats.reuseRequests++;
          if (old) {
            client.end(encodeFrame(FrameType.ERROR, unexpectedFrameText(FrameType.REUSE_REQ)));
            upstream.destroy();
            return;
          }
        }
      }
      upstream.write(chunk);
    });
    upstream.on("data", (d) => client.write(d));
    // Half-closes pass through (a v1 exec ends its stdin with one).
    client.on("end", () => upstream.end());
    upstream.on("end", () => client.end());
    for (const s of [client, upstream]) {
      s.on("error", () => {});
      s.on("close", () => {
        client.destroy();
        upstream.destroy();
      });
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  return {
    stats,
    /** Cuts every connection through the relay (a restart of the agent, to the client). */
    cutAll: () => {
      for (const s of sockets) s.destroy();
    },
    client(): AgentClient {
      const c = createAgentClient({
        control: { host: "127.0.0.1", port },
        forward: agent.forward,
        token: agent.token,
      });
      cleanups.push(() => c.close());
      return c;
    },
  };
}

/** Waits until `check` holds (the pool learns in the background). */
async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; !check(); i++) {
    if (i > 500) throw new Error(`never: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("the client's pool with kept connections", () => {
  it("sequential operations share a few connections instead of one each", async () => {
    const relay = await countingRelay();
    const client = relay.client();
    await client.exec(["true"]);
    await until(() => relay.stats.reuseRequests >= 1, "the pool asks once");
    for (let i = 0; i < 30; i++) {
      const r = await client.exec(["echo", String(i)], i % 3 === 0 ? { stdin: "x" } : {});
      expect(r.stdout.toString()).toBe(`${i}\n`);
      await client.writeFile(`${agent.workspace}/pool.txt`, `v${i}`);
      expect((await client.readFileBuffer(`${agent.workspace}/pool.txt`)).data.toString()).toBe(`v${i}`);
      expect((await client.stat(`${agent.workspace}/pool.txt`)).size).toBe(`v${i}`.length);
    }
    // 120 operations: the first one's connection, the probe, and spares dialed while it learned.
    expect(relay.stats.connections).toBeLessThanOrEqual(4);
  });

  it("a streamed exec whose stdin was ended gives its connection back too", async () => {
    const relay = await countingRelay();
    const client = relay.client();
    await client.exec(["true"]);
    await until(() => relay.stats.reuseRequests >= 1, "the pool asks once");
    let before = relay.stats.connections;
    for (let i = 0; i < 13; i++) {
      // The first few settle the pool (spares dialed while it learned).
      if (i === 3) before = relay.stats.connections;
      const proc = await client.execStream(["cat"]);
      await proc.write(`line ${i}`);
      proc.closeStdin();
      let out = "";
      let exit: number | undefined;
      for await (const ev of proc) {
        if (ev.type === "stdout") out += ev.data.toString();
        if (ev.type === "exit") exit = ev.exitCode;
      }
      expect({ out, exit }).toEqual({ out: `line ${i}`, exit: 0 });
    }
    // At most the pool's spares (2) may still have been dialing when the count was taken.
    expect(relay.stats.connections).toBeLessThanOrEqual(before + 2);
  });

  it("a burst of concurrent operations finds its connections kept for the next burst", async () => {
    const relay = await countingRelay();
    const client = relay.client();
    await client.exec(["true"]);
    await until(() => relay.stats.reuseRequests >= 1, "the pool asks once");
    const burst = () => Promise.all(Array.from({ length: 10 }, (_, i) => client.exec(["echo", String(i)])));
    await burst();
    const afterFirst = relay.stats.connections;
    for (let k = 0; k < 3; k++) {
      const results = await burst();
      expect(results.map((r) => r.stdout.toString())).toEqual(Array.from({ length: 10 }, (_, i) => `${i}\n`));
    }
    // 30 more operations, no connection of their own: at most the pool's spares (2) were still
    // being dialed after the first burst.
    expect(relay.stats.connections).toBeLessThanOrEqual(afterFirst + 2);
  });

  it("kept connections cut while idle are replaced without failing an operation", async () => {
    const relay = await countingRelay();
    const client = relay.client();
    for (let i = 0; i < 5; i++) await client.exec(["true"]);
    await until(() => relay.stats.reuseRequests >= 1, "the pool asks once");
    relay.cutAll();
    for (let i = 0; i < 5; i++)
      expect((await client.exec(["echo", "again"])).stdout.toString()).toBe("again\n");
  });

  it("an agent without REUSE_REQ is served one operation per connection, asked only once", async () => {
    const relay = await countingRelay(true);
    const client = relay.client();
    for (let i = 0; i < 10; i++) {
      expect((await client.exec(["echo", String(i)])).stdout.toString()).toBe(`${i}\n`);
      expect((await client.activity()).last_activity_unix).toBeGreaterThan(0);
    }
    expect(relay.stats.reuseRequests).toBe(1);
    expect(relay.stats.connections).toBeGreaterThanOrEqual(20);
    // drainPool (a sandbox restored) forgets what the pool learned: it asks once more.
    client.drainPool();
    await client.exec(["true"]);
    await until(() => relay.stats.reuseRequests === 2, "the pool asks again after a drain");
    expect((await client.exec(["echo", "fine"])).stdout.toString()).toBe("fine\n");
  });
});
