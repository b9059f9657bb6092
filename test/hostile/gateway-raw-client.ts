import { randomBytes } from "node:crypto";
import { type Socket, connect } from "node:net";

/**
 * Raw HTTP/1.1 and WebSocket bytes to the gateway, for requests no well-behaved client library
 * would send (unparseable targets, lying lengths, hand-made frames). Every read is bounded: a
 * reply that neither completes nor closes the socket in time is reported as a hang.
 */

/** What came back: a parsed response, or only a closed socket. */
export interface RawReply {
  /** Status of the first response, undefined when the socket closed without one. */
  readonly status: number | undefined;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** The server closed the connection (before or after a response). */
  readonly closed: boolean;
}

const HANG_MS = 15_000;

interface ParsedHead {
  status: number;
  headers: Record<string, string>;
  bodyStart: number;
}

function parseHead(buf: Buffer): ParsedHead | undefined {
  const end = buf.indexOf("\r\n\r\n");
  if (end < 0) return undefined;
  const lines = buf.subarray(0, end).toString("latin1").split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "")?.[1]);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(":");
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status, headers, bodyStart: end + 4 };
}

/** The complete body once it has all arrived (content-length or chunked), else undefined. */
function completeBody(buf: Buffer, head: ParsedHead, noBody: boolean): string | undefined {
  const rest = buf.subarray(head.bodyStart);
  if (noBody || head.status === 101 || head.status === 204 || head.status === 304 || head.status < 200)
    return "";
  const length = head.headers["content-length"];
  if (length !== undefined)
    return rest.length >= Number(length) ? rest.subarray(0, Number(length)).toString() : undefined;
  if (head.headers["transfer-encoding"] === "chunked") {
    return rest.includes("\r\n0\r\n\r\n") || rest.subarray(0, 5).toString() === "0\r\n\r\n"
      ? rest.toString()
      : undefined;
  }
  return undefined;
}

export interface RawOptions {
  /** HEAD requests get headers only. */
  readonly noBody?: boolean;
  /** Half-closes our side after writing (a truncated body). */
  readonly endAfterWrite?: boolean;
}

/** Opens a connection to the gateway (a TCP port on loopback or the test relay's Unix socket). */
export type GatewayDial = () => Promise<Socket>;

export function unixDial(path: string): GatewayDial {
  return () =>
    new Promise((resolve, reject) => {
      const socket = connect({ path }, () => {
        socket.off("error", reject);
        resolve(socket);
      });
      socket.once("error", reject);
    });
}

/** Waits for `done` to return a value from the bytes received so far, or for the socket to close. */
function collect<T>(
  socket: Socket,
  done: (received: Buffer) => T | undefined,
  onClose: (received: Buffer) => T,
  what: string,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let received = Buffer.alloc(0);
    let settled = false;
    const finish = (value: T | Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("close", onSocketClose);
      if (value instanceof Error) reject(value);
      else resolve(value);
    };
    const timer = setTimeout(() => {
      socket.destroy();
      finish(
        new Error(
          `gateway hung: ${what} (got ${JSON.stringify(received.subarray(0, 200).toString("latin1"))})`,
        ),
      );
    }, HANG_MS);
    const onData = (d: Buffer) => {
      received = Buffer.concat([received, d]);
      const value = done(received);
      if (value !== undefined) finish(value);
    };
    const onSocketClose = () => finish(onClose(received));
    socket.on("data", onData);
    socket.on("close", onSocketClose);
    // Writes racing the server's close are expected (EPIPE, ECONNRESET): the reply is what counts.
    socket.on("error", () => undefined);
  });
}

function replyOf(received: Buffer, closed: boolean, noBody: boolean): RawReply | undefined {
  const head = parseHead(received);
  if (head === undefined) return closed ? { status: undefined, headers: {}, body: "", closed } : undefined;
  const body = completeBody(received, head, noBody);
  if (body === undefined && !closed) return undefined;
  return {
    status: head.status,
    headers: head.headers,
    body: body ?? received.subarray(head.bodyStart).toString(),
    closed,
  };
}

/** Sends raw bytes and reads one response (or the close). */
export async function rawRequest(
  dial: GatewayDial,
  bytes: Buffer | string,
  options: RawOptions = {},
): Promise<RawReply> {
  const socket = await dial();
  try {
    const reply = collect(
      socket,
      (r) => replyOf(r, false, options.noBody === true),
      (r) => replyOf(r, true, options.noBody === true) as RawReply,
      `reply to ${JSON.stringify(String(bytes).slice(0, 80))}`,
    );
    socket.write(bytes);
    if (options.endAfterWrite === true) socket.end();
    return await reply;
  } finally {
    socket.destroy();
  }
}

/**
 * Sends the head, then body chunks until the server answers or closes (or `maxChunks` went out):
 * shows that a refusal comes before the body, however large it claims to be.
 */
export async function streamUntilAnswered(
  dial: GatewayDial,
  head: string,
  chunk: Buffer,
  maxChunks: number,
): Promise<{ reply: RawReply; chunksSent: number }> {
  const socket = await dial();
  try {
    let answered = false;
    const reply = collect(
      socket,
      (r) => replyOf(r, false, false),
      (r) => replyOf(r, true, false) as RawReply,
      `reply to ${JSON.stringify(head.slice(0, 80))}`,
    ).finally(() => {
      answered = true;
    });
    socket.write(head);
    let chunksSent = 0;
    while (!answered && !socket.destroyed && chunksSent < maxChunks) {
      const flushed = socket.write(chunk);
      chunksSent++;
      if (!flushed) {
        await Promise.race([
          new Promise((r) => socket.once("drain", r)),
          new Promise((r) => socket.once("close", r)),
          reply.catch(() => undefined),
        ]);
      }
    }
    return { reply: await reply, chunksSent };
  } finally {
    socket.destroy();
  }
}

// --- WebSocket frames ---

export interface FrameSpec {
  readonly fin?: boolean;
  /** The three RSV bits, 0..7. */
  readonly rsv?: number;
  readonly opcode: number;
  readonly payload?: Buffer;
  readonly masked?: boolean;
  /** Length encoding: the shortest, or forced 16-bit / 64-bit. */
  readonly lengthForm?: "short" | "16" | "64";
  /** Declare this length (64-bit form) and send no payload: an oversize frame. */
  readonly declaredLength?: number;
}

/** A client frame as RFC 6455 §5.2 lays it out (masked unless told otherwise). */
export function wsFrame(spec: FrameSpec): Buffer {
  const payload = spec.payload ?? Buffer.alloc(0);
  const masked = spec.masked !== false;
  const first = ((spec.fin ?? true) ? 0x80 : 0) | (((spec.rsv ?? 0) & 7) << 4) | (spec.opcode & 0x0f);
  const length = spec.declaredLength ?? payload.length;
  const form = spec.declaredLength !== undefined ? "64" : (spec.lengthForm ?? "short");
  let lengthBytes: Buffer;
  if (form === "64" || (form === "short" && length > 0xffff)) {
    lengthBytes = Buffer.alloc(9);
    lengthBytes[0] = 127;
    lengthBytes.writeBigUInt64BE(BigInt(length), 1);
  } else if (form === "16" || length > 125) {
    lengthBytes = Buffer.alloc(3);
    lengthBytes[0] = 126;
    lengthBytes.writeUInt16BE(length, 1);
  } else {
    lengthBytes = Buffer.from([length]);
  }
  lengthBytes[0] = (lengthBytes[0] ?? 0) | (masked ? 0x80 : 0);
  const key = masked ? randomBytes(4) : Buffer.alloc(0);
  const body = spec.declaredLength !== undefined ? Buffer.alloc(0) : Buffer.from(payload);
  if (masked) for (let i = 0; i < body.length; i++) body[i] = (body[i] ?? 0) ^ (key[i % 4] ?? 0);
  return Buffer.concat([Buffer.from([first]), lengthBytes, key, body]);
}

/** A close frame with a status code and reason bytes (which need not be valid UTF-8). */
export function wsCloseFrame(code: number, reason: Buffer = Buffer.alloc(0)): Buffer {
  const payload = Buffer.alloc(2 + reason.length);
  payload.writeUInt16BE(code, 0);
  reason.copy(payload, 2);
  return wsFrame({ opcode: 0x8, payload });
}

/** The status code of the first close frame the server sent, if one arrived. */
export function serverCloseCode(received: Buffer): number | undefined {
  let at = 0;
  while (at + 2 <= received.length) {
    const opcode = (received[at] ?? 0) & 0x0f;
    let length = (received[at + 1] ?? 0) & 0x7f;
    let headerLength = 2;
    if (length === 126) {
      if (at + 4 > received.length) return undefined;
      length = received.readUInt16BE(at + 2);
      headerLength = 4;
    } else if (length === 127) {
      if (at + 10 > received.length) return undefined;
      length = Number(received.readBigUInt64BE(at + 2));
      headerLength = 10;
    }
    if (opcode === 0x8)
      return length >= 2 && at + headerLength + 2 <= received.length
        ? received.readUInt16BE(at + headerLength)
        : 1005;
    at += headerLength + length;
  }
  return undefined;
}

export interface WsExchange {
  /** The upgrade succeeded (101). */
  readonly upgraded: boolean;
  /** Status of a refused upgrade. */
  readonly status: number | undefined;
  /** Close code of the server's close frame, when one arrived before the socket closed. */
  readonly closeCode: number | undefined;
}

/**
 * Upgrades with a real handshake, then writes `frames` (and then `after`, e.g. a clean close) and
 * waits until the server closes the connection.
 */
export async function wsExchange(
  dial: GatewayDial,
  path: string,
  apiKey: string,
  frames: Buffer,
  after: Buffer = Buffer.alloc(0),
): Promise<WsExchange> {
  const socket = await dial();
  try {
    const handshake =
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n` +
      `Authorization: Bearer ${apiKey}\r\n\r\n`;
    const head = collect(
      socket,
      (r) => {
        const parsed = parseHead(r);
        return parsed === undefined ? undefined : { parsed, rest: r.subarray(parsed.bodyStart) };
      },
      () => undefined,
      `upgrade of ${path}`,
    );
    socket.write(handshake);
    const got = await head;
    if (got === undefined || got.parsed.status !== 101)
      return { upgraded: false, status: got?.parsed.status, closeCode: undefined };
    let received: Buffer = got.rest;
    const closed = collect(
      socket,
      (r) => {
        received = Buffer.concat([got.rest, r]);
        return undefined;
      },
      () => true,
      `close after hostile frames on ${path}`,
    );
    socket.write(Buffer.concat([frames, after]));
    await closed;
    return { upgraded: true, status: 101, closeCode: serverCloseCode(received) };
  } finally {
    socket.destroy();
  }
}
