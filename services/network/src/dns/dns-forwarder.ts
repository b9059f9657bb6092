import { randomInt } from "node:crypto";
import { type Socket as UdpSocket, createSocket } from "node:dgram";
import { connect } from "node:net";
import { type DnsMessage, parseMessage } from "./dns-message.js";

/** An upstream resolver: "1.1.1.1" or "1.1.1.1:5353". */
export interface Upstream {
  host: string;
  port: number;
}

export function parseUpstream(text: string): Upstream | undefined {
  const m = /^(\d+\.\d+\.\d+\.\d+)(?::(\d{1,5}))?$/.exec(text.trim());
  if (m?.[1] === undefined) return undefined;
  const port = m[2] === undefined ? 53 : Number(m[2]);
  return port > 0 && port < 65536 ? { host: m[1], port } : undefined;
}

/** Every forwarding slot is taken: the caller answers SERVFAIL (the client retries later). */
export class UpstreamBusyError extends Error {
  override readonly name = "UpstreamBusyError";
}

export interface UpstreamClientOptions {
  upstreams: () => readonly Upstream[];
  /** How long each upstream gets per query. */
  timeoutMs: number;
  /** Queries forwarded at once, over all resolvers and both transports. */
  maxInFlight?: number;
  /** Of those, queries forwarded over TCP at once (each holds a connection, so a descriptor). */
  maxTcpInFlight?: number;
  /** UDP sockets the forwarded queries are spread over (each has its own source port). */
  udpSockets?: number;
}

/**
 * Forwards queries for every user's resolver. Each forwarded query gets a random id of its
 * own (the sandbox's id is put back on the reply), and a reply only counts if it comes from
 * the upstream asked, carries that id and repeats the question asked: an off-path attacker
 * must guess id and source port, and a reply to another question is never passed on. UDP
 * queries share a small fixed set of sockets, so a flood cannot use up file descriptors.
 */
export interface UpstreamClient {
  /** The reply to `query` (whose parsed form is `message`), with the query's own id. */
  forward(query: Buffer, message: DnsMessage, transport: "udp" | "tcp"): Promise<Buffer>;
  inFlight(): number;
  close(): void;
}

const DEFAULT_MAX_IN_FLIGHT = 1024;
/** Descriptors are shared with attach and detach (ip, nft, netns files): keep most for them. */
const DEFAULT_MAX_TCP_IN_FLIGHT = 128;
const DEFAULT_UDP_SOCKETS = 4;
/** Attempts at drawing an id that no pending query to the same upstream holds. */
const ID_ATTEMPTS = 16;

/** ASCII case-insensitive equality of two question byte strings (0x20 bit of letters only). */
function sameQuestion(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x === y) continue;
    const lx = x >= 0x41 && x <= 0x5a ? x | 0x20 : x;
    const ly = y >= 0x41 && y <= 0x5a ? y | 0x20 : y;
    if (lx !== ly) return false;
  }
  return true;
}

/** Whether `reply` answers the question of `asked` (same first question, one question). */
export function replyMatches(reply: Buffer, asked: DnsMessage): boolean {
  let parsed: DnsMessage;
  try {
    parsed = parseMessage(reply);
  } catch {
    return false;
  }
  if (parsed.questions.length !== 1 || parsed.questionBytes === undefined) return false;
  return asked.questionBytes !== undefined && sameQuestion(parsed.questionBytes, asked.questionBytes);
}

function withId(message: Buffer, id: number): Buffer {
  const copy = Buffer.from(message);
  copy.writeUInt16BE(id, 0);
  return copy;
}

interface PendingUdp {
  asked: DnsMessage;
  resolve(reply: Buffer): void;
}

export function createUpstreamClient(options: UpstreamClientOptions): UpstreamClient {
  const maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
  const maxTcpInFlight = options.maxTcpInFlight ?? DEFAULT_MAX_TCP_IN_FLIGHT;
  const socketCount = options.udpSockets ?? DEFAULT_UDP_SOCKETS;
  const sockets: (UdpSocket | undefined)[] = new Array(socketCount).fill(undefined);
  /** "<socket>|<host>:<port>|<id>" → the query waiting for that reply. */
  const pendingUdp = new Map<string, PendingUdp>();
  let inFlight = 0;
  let tcpInFlight = 0;
  let closed = false;

  const keyOf = (slot: number, host: string, port: number, id: number) => `${slot}|${host}:${port}|${id}`;

  function socketAt(slot: number): UdpSocket {
    const existing = sockets[slot];
    if (existing !== undefined) return existing;
    const socket = createSocket("udp4");
    socket.on("message", (msg, rinfo) => {
      if (msg.length < 12) return;
      const key = keyOf(slot, rinfo.address, rinfo.port, msg.readUInt16BE(0));
      const pending = pendingUdp.get(key);
      // A reply to another question is ignored, not taken as the answer: the real one may follow.
      if (pending === undefined || !replyMatches(msg, pending.asked)) return;
      pendingUdp.delete(key);
      pending.resolve(msg);
    });
    socket.on("error", () => {
      // Replace a broken socket; its pending queries time out.
      if (sockets[slot] === socket) sockets[slot] = undefined;
      try {
        socket.close();
      } catch {
        // already closed
      }
    });
    socket.unref();
    sockets[slot] = socket;
    return socket;
  }

  function queryUdp(query: Buffer, asked: DnsMessage, upstream: Upstream): Promise<Buffer> {
    const slot = randomInt(socketCount);
    let id = -1;
    for (let i = 0; i < ID_ATTEMPTS && id === -1; i++) {
      const candidate = randomInt(65536);
      if (!pendingUdp.has(keyOf(slot, upstream.host, upstream.port, candidate))) id = candidate;
    }
    if (id === -1) return Promise.reject(new UpstreamBusyError("no free query id"));
    const key = keyOf(slot, upstream.host, upstream.port, id);
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        pendingUdp.delete(key);
        reject(new Error(`no answer from ${upstream.host} in ${options.timeoutMs} ms`));
      }, options.timeoutMs);
      pendingUdp.set(key, {
        asked,
        resolve: (reply) => {
          clearTimeout(timer);
          resolve(reply);
        },
      });
      socketAt(slot).send(withId(query, id), upstream.port, upstream.host, (e) => {
        if (e === null || e === undefined) return;
        clearTimeout(timer);
        pendingUdp.delete(key);
        reject(e);
      });
    });
  }

  /** Over TCP (2-byte length prefix), one connection per query. */
  function queryTcp(query: Buffer, asked: DnsMessage, upstream: Upstream): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const id = randomInt(65536);
      const socket = connect({ host: upstream.host, port: upstream.port });
      let data = Buffer.alloc(0);
      const timer = setTimeout(
        () => finish(new Error(`no answer from ${upstream.host} in ${options.timeoutMs} ms`)),
        options.timeoutMs,
      );
      const finish = (err?: Error, reply?: Buffer) => {
        clearTimeout(timer);
        socket.destroy();
        if (reply !== undefined) resolve(reply);
        else reject(err);
      };
      socket.on("connect", () => {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(query.length);
        socket.write(Buffer.concat([len, withId(query, id)]));
      });
      socket.on("data", (chunk: Buffer) => {
        data = Buffer.concat([data, chunk]);
        if (data.length >= 2 && data.length >= 2 + data.readUInt16BE(0)) {
          const reply = data.subarray(2, 2 + data.readUInt16BE(0));
          if (reply.length >= 12 && reply.readUInt16BE(0) === id && replyMatches(reply, asked)) {
            finish(undefined, reply);
          } else finish(new Error(`${upstream.host} answered another query`));
        }
      });
      socket.on("error", (e) => finish(e));
      socket.on("close", () => finish(new Error(`${upstream.host} closed the connection`)));
    });
  }

  return {
    async forward(query, message, transport) {
      if (closed) throw new Error("upstream client closed");
      if (inFlight >= maxInFlight) throw new UpstreamBusyError(`${inFlight} queries in flight`);
      if (transport === "tcp" && tcpInFlight >= maxTcpInFlight) {
        throw new UpstreamBusyError(`${tcpInFlight} TCP queries in flight`);
      }
      inFlight++;
      if (transport === "tcp") tcpInFlight++;
      try {
        let lastError: unknown = new Error("no upstream resolvers configured");
        for (const upstream of options.upstreams()) {
          try {
            const reply = await (transport === "udp" ? queryUdp : queryTcp)(query, message, upstream);
            return withId(reply, message.id);
          } catch (e) {
            if (e instanceof UpstreamBusyError) throw e;
            lastError = e;
          }
        }
        throw lastError;
      } finally {
        inFlight--;
        if (transport === "tcp") tcpInFlight--;
      }
    },
    inFlight: () => inFlight,
    close() {
      closed = true;
      for (const s of sockets) s?.close();
      sockets.fill(undefined);
    },
  };
}
