import { createSocket } from "node:dgram";
import { connect } from "node:net";

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

/** Sends a query over UDP from a fresh socket; resolves with the first reply carrying its id. */
function queryUdp(query: Buffer, upstream: Upstream, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = createSocket("udp4");
    const id = query.readUInt16BE(0);
    const timer = setTimeout(
      () => finish(new Error(`no answer from ${upstream.host} in ${timeoutMs} ms`)),
      timeoutMs,
    );
    const finish = (err?: Error, reply?: Buffer) => {
      clearTimeout(timer);
      socket.close();
      if (reply !== undefined) resolve(reply);
      else reject(err);
    };
    socket.on("message", (msg, rinfo) => {
      if (rinfo.address === upstream.host && msg.length >= 12 && msg.readUInt16BE(0) === id)
        finish(undefined, msg);
    });
    socket.on("error", (e) => finish(e));
    socket.send(query, upstream.port, upstream.host);
  });
}

/** Sends a query over TCP (2-byte length prefix). */
function queryTcp(query: Buffer, upstream: Upstream, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: upstream.host, port: upstream.port });
    let data = Buffer.alloc(0);
    const timer = setTimeout(
      () => finish(new Error(`no answer from ${upstream.host} in ${timeoutMs} ms`)),
      timeoutMs,
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
      socket.write(Buffer.concat([len, query]));
    });
    socket.on("data", (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (data.length >= 2 && data.length >= 2 + data.readUInt16BE(0)) {
        finish(undefined, data.subarray(2, 2 + data.readUInt16BE(0)));
      }
    });
    socket.on("error", (e) => finish(e));
    socket.on("close", () => finish(new Error(`${upstream.host} closed the connection`)));
  });
}

/**
 * Forwards a raw query to each upstream in turn (each gets `timeoutMs`) and returns the first
 * reply; throws if none answered.
 */
export async function forwardQuery(
  query: Buffer,
  upstreams: readonly Upstream[],
  transport: "udp" | "tcp",
  timeoutMs: number,
): Promise<Buffer> {
  let lastError: unknown = new Error("no upstream resolvers configured");
  for (const upstream of upstreams) {
    try {
      return await (transport === "udp" ? queryUdp : queryTcp)(query, upstream, timeoutMs);
    } catch (e) {
      lastError = e;
    }
  }
  throw lastError;
}
