import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { WS_SEND_HIGH_WATER_MARK, sendPaced, stdinPump } from "./flow-control.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A real WebSocket pair over loopback TCP: the server side (what the gateway holds) and a client. */
async function pair(): Promise<{ server: WebSocket; client: WebSocket }> {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20 });
  const http = createServer();
  const serverSide = new Promise<WebSocket>((resolve) => {
    http.on("upgrade", (req, socket, head) => wss.handleUpgrade(req, socket, head, resolve));
  });
  http.listen(0, "127.0.0.1");
  await once(http, "listening");
  const port = (http.address() as AddressInfo).port;
  const client = new WebSocket(`ws://127.0.0.1:${port}/`);
  await once(client, "open");
  const server = await serverSide;
  cleanups.push(async () => {
    client.terminate();
    server.terminate();
    wss.close();
    await new Promise((r) => http.close(r));
  });
  return { server, client };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not reached`);
    await sleep(10);
  }
}

describe("WebSocket flow control", () => {
  it("sendPaced keeps the queue for a client that stops reading under the watermark, and delivers everything in order once it reads", async () => {
    const { server, client } = await pair();
    client.pause();
    const message = Buffer.alloc(64 * 1024, 0x61);
    const count = 200; // 12.5 MiB: far more than the watermark and the socket buffers
    let maxQueued = 0;
    let waiting = false;
    const sending = (async () => {
      for (let i = 0; i < count; i++) {
        message.writeUInt32BE(i, 0);
        waiting = true;
        await sendPaced(server, Buffer.from(message), true);
        waiting = false;
        maxQueued = Math.max(maxQueued, server.bufferedAmount);
      }
    })();
    // The sender blocks: the client takes nothing.
    await until(() => waiting && server.bufferedAmount > 0, "sender blocked");
    const received: number[] = [];
    client.on("message", (d: Buffer) => received.push(d.readUInt32BE(0)));
    client.resume();
    await sending;
    await until(() => received.length === count, "all received");
    expect(received).toEqual([...Array(count).keys()]);
    expect(maxQueued).toBeLessThanOrEqual(WS_SEND_HIGH_WATER_MARK + message.byteLength);
  });

  it("sendPaced resolves when the client goes away while the sender waits", async () => {
    const { server, client } = await pair();
    client.pause();
    const big = Buffer.alloc(512 * 1024);
    let blocked: Promise<void> | undefined;
    for (let i = 0; i < 1000 && blocked === undefined; i++) {
      let done = false;
      const p = sendPaced(server, big, true).then(() => {
        done = true;
      });
      await Promise.resolve();
      await Promise.resolve();
      if (!done) blocked = p;
    }
    expect(blocked).toBeDefined();
    client.terminate();
    await blocked;
  });

  it("stdinPump writes in order, one at a time, and pauses the socket while a write waits", async () => {
    const { server, client } = await pair();
    const written: string[] = [];
    const gates: Array<() => void> = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const feed = stdinPump(
      server,
      async (data) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise<void>((resolve) => gates.push(resolve));
        written.push(data.toString());
        inFlight--;
      },
      () => {},
    );
    server.on("message", (d: Buffer) => feed(d));
    for (let i = 0; i < 5; i++) client.send(`m${i}`);
    // The first write waits; the second message pauses the socket.
    await until(() => server.isPaused, "paused");
    while (written.length < 5) {
      await until(() => gates.length > 0, "a write waiting");
      gates.shift()?.();
      await sleep(0);
    }
    expect(written).toEqual(["m0", "m1", "m2", "m3", "m4"]);
    expect(maxInFlight).toBe(1);
    await until(() => !server.isPaused, "resumed");
  });
});
