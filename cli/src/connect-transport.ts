import type { ClientRequest, IncomingMessage, RequestOptions } from "node:http";

/**
 * The Connect protocol (unary and server streaming over HTTP/1.1) on node:http alone, for the CLI.
 * @connectrpc/connect-node would do the same, but it goes through the fetch API's Headers, which
 * makes Node load undici (~50 ms of a CLI run that otherwise takes ~100 ms). This module does not
 * load protobuf either: it moves bytes, and a failed call becomes a ConnectError only then (that
 * module loads the protobuf runtime). connect-http.ts puts protobuf messages on top; `list` and
 * `exec` send JSON (connect-json.ts) and never build a descriptor.
 *
 * Each call uses its own connection (no keep-alive agent), so nothing is left holding the event
 * loop once the call is over: a command exits as soon as its work is done.
 */
export interface CallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface TransportOptions {
  baseUrl: string;
  headers: Record<string, string>;
  /** Deadline of each call that does not pass its own `timeoutMs`. */
  defaultTimeoutMs: number;
}

/** A failed call, named by its Connect code ("not_found"...), before it becomes a ConnectError. */
class CallFailure extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** The Connect protocol's mapping of an HTTP status without a usable error body. */
function codeOfHttpStatus(status: number): string {
  switch (status) {
    case 400:
      return "internal";
    case 401:
      return "unauthenticated";
    case 403:
      return "permission_denied";
    case 404:
      return "unimplemented";
    case 429:
    case 502:
    case 503:
    case 504:
      return "unavailable";
    default:
      return "unknown";
  }
}

function failureFromJson(json: unknown, fallbackCode: string, fallbackMessage: string): CallFailure {
  if (typeof json === "object" && json !== null) {
    const { code, message } = json as { code?: unknown; message?: unknown };
    return new CallFailure(
      typeof message === "string" ? message : fallbackMessage,
      typeof code === "string" ? code : fallbackCode,
    );
  }
  return new CallFailure(fallbackMessage, fallbackCode);
}

function failureFromBody(status: number, body: Buffer): CallFailure {
  try {
    return failureFromJson(JSON.parse(body.toString("utf8")), codeOfHttpStatus(status), `HTTP ${status}`);
  } catch {
    return new CallFailure(`HTTP ${status}`, codeOfHttpStatus(status));
  }
}

/** Any failure of a call as the ConnectError the rest of the CLI expects. */
async function asConnectError(e: unknown, timedOut: boolean): Promise<Error> {
  const { Code, ConnectError } = await import("@connectrpc/connect");
  if (e instanceof ConnectError) return e;
  if (e instanceof CallFailure) {
    // Connect's code names are the snake_case of the Code enum's names.
    const name = e.code.replace(/(^|_)([a-z])/g, (_m, _s, c: string) => c.toUpperCase());
    const code = (Code as unknown as Record<string, number | undefined>)[name];
    return new ConnectError(e.message, code ?? Code.Unknown);
  }
  if (timedOut) return new ConnectError("the call timed out", Code.DeadlineExceeded);
  if (e instanceof Error && e.name === "AbortError")
    return new ConnectError("the call was canceled", Code.Canceled);
  return new ConnectError(e instanceof Error ? e.message : String(e), Code.Unavailable);
}

function envelope(flags: number, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + data.byteLength);
  out.writeUInt8(flags, 0);
  out.writeUInt32BE(data.byteLength, 1);
  out.set(data, 5);
  return out;
}

/** Reads whole envelopes (flags, payload) out of a response body. */
async function* envelopes(res: IncomingMessage): AsyncGenerator<{ flags: number; data: Buffer }> {
  let buf: Buffer = Buffer.alloc(0);
  for await (const chunk of res) {
    buf = buf.byteLength === 0 ? (chunk as Buffer) : Buffer.concat([buf, chunk as Buffer]);
    while (buf.byteLength >= 5) {
      const len = buf.readUInt32BE(1);
      if (buf.byteLength < 5 + len) break;
      yield { flags: buf.readUInt8(0), data: buf.subarray(5, 5 + len) };
      buf = buf.subarray(5 + len);
    }
  }
  if (buf.byteLength > 0) throw new CallFailure("the response ended inside a message", "data_loss");
}

async function readAll(res: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of res) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

export interface ConnectTransport {
  /** One unary call of `Service/Method`; resolves with the response body (the encoded message). */
  unary(path: string, codec: "proto" | "json", body: Uint8Array, call?: CallOptions): Promise<Buffer>;
  /** One server-streaming call; yields each encoded response message. */
  serverStream(
    path: string,
    codec: "proto" | "json",
    body: Uint8Array,
    call?: CallOptions,
  ): AsyncGenerator<Buffer>;
}

export function createConnectTransport(options: TransportOptions): ConnectTransport {
  const base = new URL(options.baseUrl);
  const secure = base.protocol === "https:";
  const prefix = base.pathname.replace(/\/+$/, "");

  /** Sends one request; resolves with the response once its headers arrived. */
  const send = (
    path: string,
    contentType: string,
    body: Buffer | Uint8Array,
    call: CallOptions,
  ): Promise<{ res: IncomingMessage; req: ClientRequest; timedOut: () => boolean }> => {
    // https (and with it tls) is loaded only for an https gateway URL. getBuiltinModule, not
    // import(): an ESM import of node:http reads every export, and some of them load undici.
    const { request } = secure
      ? process.getBuiltinModule("node:https")
      : process.getBuiltinModule("node:http");
    const timeoutMs = call.timeoutMs ?? options.defaultTimeoutMs;
    const reqOptions: RequestOptions = {
      host: base.hostname.replace(/^\[|\]$/g, ""),
      port: base.port === "" ? (secure ? 443 : 80) : Number(base.port),
      method: "POST",
      path: `${prefix}/${path}`,
      agent: false,
      headers: {
        ...options.headers,
        "content-type": contentType,
        "content-length": String(body.byteLength),
        "connect-protocol-version": "1",
        "connect-timeout-ms": String(timeoutMs),
      },
    };
    if (call.signal !== undefined) reqOptions.signal = call.signal;
    let timedOut = false;
    return new Promise((resolve, reject) => {
      const req = request(reqOptions, (res) => resolve({ res, req, timedOut: () => timedOut }));
      const timer = setTimeout(() => {
        timedOut = true;
        req.destroy(new CallFailure("the call timed out", "deadline_exceeded"));
      }, timeoutMs);
      // The deadline covers the whole call, body included; it must never hold the process open.
      timer.unref();
      req.once("close", () => clearTimeout(timer));
      req.once("error", (e) => {
        asConnectError(e, timedOut).then(reject, reject);
      });
      req.end(body);
    });
  };

  return {
    async unary(path, codec, body, call = {}) {
      const { res, req, timedOut } = await send(path, `application/${codec}`, body, call);
      try {
        const data = await readAll(res);
        if (res.statusCode !== 200) throw failureFromBody(res.statusCode ?? 0, data);
        return data;
      } catch (e) {
        throw await asConnectError(e, timedOut());
      } finally {
        req.destroy();
      }
    },

    async *serverStream(path, codec, body, call = {}) {
      const { res, req, timedOut } = await send(
        path,
        `application/connect+${codec}`,
        envelope(0, body),
        call,
      );
      // Leaving the loop early (break, return, an exception) ends the call and its connection.
      try {
        if (res.statusCode !== 200) throw failureFromBody(res.statusCode ?? 0, await readAll(res));
        let ended = false;
        for await (const { flags, data } of envelopes(res)) {
          if ((flags & 0b10) !== 0) {
            const end = JSON.parse(data.toString("utf8") || "{}") as { error?: unknown };
            if (end.error !== undefined) throw failureFromJson(end.error, "unknown", "the call failed");
            ended = true;
            break;
          }
          if ((flags & 0b1) !== 0) throw new CallFailure("compressed message not requested", "internal");
          yield data;
        }
        if (!ended) throw new CallFailure("the stream ended without an end-of-stream message", "data_loss");
      } catch (e) {
        throw await asConnectError(e, timedOut());
      } finally {
        req.destroy();
      }
    },
  };
}
