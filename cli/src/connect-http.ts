import type { ClientRequest, IncomingMessage, RequestOptions } from "node:http";
import {
  type DescMessage,
  type DescMethod,
  type DescMethodServerStreaming,
  type DescMethodUnary,
  type DescService,
  type MessageInitShape,
  type MessageShape,
  create,
  fromBinary,
  toBinary,
} from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * A Connect-protocol client (binary protobuf over HTTP/1.1) built on node:http alone, for the
 * CLI. @connectrpc/connect-node would do the same, but it goes through the fetch API's Headers,
 * which makes Node load undici (~50 ms of a CLI run that otherwise takes ~100 ms). Unary and
 * server-streaming methods only: that is all the public API has.
 *
 * Each call uses its own connection (no keep-alive agent), so nothing is left holding the event
 * loop once the call is over: a command exits as soon as its work is done.
 */
export interface CallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

export type GatewayClient<S extends DescService> = {
  [P in keyof S["method"]]: S["method"][P] extends DescMethodUnary<infer I, infer O>
    ? (request: MessageInitShape<I>, options?: CallOptions) => Promise<MessageShape<O>>
    : S["method"][P] extends DescMethodServerStreaming<infer I, infer O>
      ? (request: MessageInitShape<I>, options?: CallOptions) => AsyncIterable<MessageShape<O>>
      : never;
};

export interface ConnectHttpOptions {
  baseUrl: string;
  headers: Record<string, string>;
  /** Deadline of each call that does not pass its own `timeoutMs`. */
  defaultTimeoutMs: number;
}

/** Connect's error code names (the `code` of an error body) to codes. */
const CODE_BY_NAME: Record<string, Code> = {
  canceled: Code.Canceled,
  unknown: Code.Unknown,
  invalid_argument: Code.InvalidArgument,
  deadline_exceeded: Code.DeadlineExceeded,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  permission_denied: Code.PermissionDenied,
  resource_exhausted: Code.ResourceExhausted,
  failed_precondition: Code.FailedPrecondition,
  aborted: Code.Aborted,
  out_of_range: Code.OutOfRange,
  unimplemented: Code.Unimplemented,
  internal: Code.Internal,
  unavailable: Code.Unavailable,
  data_loss: Code.DataLoss,
  unauthenticated: Code.Unauthenticated,
};

/** The Connect protocol's mapping of an HTTP status without a usable error body. */
function codeOfHttpStatus(status: number): Code {
  switch (status) {
    case 400:
      return Code.Internal;
    case 401:
      return Code.Unauthenticated;
    case 403:
      return Code.PermissionDenied;
    case 404:
      return Code.Unimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return Code.Unavailable;
    default:
      return Code.Unknown;
  }
}

function errorFromJson(json: unknown, fallback: Code, fallbackMessage: string): ConnectError {
  if (typeof json === "object" && json !== null) {
    const { code, message } = json as { code?: unknown; message?: unknown };
    const c = typeof code === "string" ? CODE_BY_NAME[code] : undefined;
    return new ConnectError(typeof message === "string" ? message : fallbackMessage, c ?? fallback);
  }
  return new ConnectError(fallbackMessage, fallback);
}

function errorFromBody(status: number, body: Buffer): ConnectError {
  const fallback = codeOfHttpStatus(status);
  try {
    return errorFromJson(JSON.parse(body.toString("utf8")), fallback, `HTTP ${status}`);
  } catch {
    return new ConnectError(`HTTP ${status}`, fallback);
  }
}

function errorFromTransport(e: Error, timedOut: boolean): ConnectError {
  if (e instanceof ConnectError) return e;
  if (timedOut) return new ConnectError("the call timed out", Code.DeadlineExceeded);
  if (e.name === "AbortError") return new ConnectError("the call was canceled", Code.Canceled);
  return new ConnectError(e.message, Code.Unavailable);
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
  if (buf.byteLength > 0) throw new ConnectError("the response ended inside a message", Code.DataLoss);
}

async function readAll(res: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of res) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

export function createConnectHttpClient<S extends DescService>(
  service: S,
  options: ConnectHttpOptions,
): GatewayClient<S> {
  const base = new URL(options.baseUrl);
  const secure = base.protocol === "https:";
  const prefix = base.pathname.replace(/\/+$/, "");

  /** Sends one request; resolves with the response once its headers arrived. */
  const send = (
    method: DescMethod,
    contentType: string,
    body: Buffer,
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
      path: `${prefix}/${service.typeName}/${method.name}`,
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
        req.destroy(new ConnectError("the call timed out", Code.DeadlineExceeded));
      }, timeoutMs);
      // The deadline covers the whole call, body included; it must never hold the process open.
      timer.unref();
      req.once("close", () => clearTimeout(timer));
      req.once("error", (e) => reject(errorFromTransport(e, timedOut)));
      req.end(body);
    });
  };

  const unary = async (method: DescMethod, input: MessageInitShape<DescMessage>, call: CallOptions = {}) => {
    const body = Buffer.from(toBinary(method.input, create(method.input, input)));
    const { res, req, timedOut } = await send(method, "application/proto", body, call);
    try {
      const data = await readAll(res);
      if (res.statusCode !== 200) throw errorFromBody(res.statusCode ?? 0, data);
      return fromBinary(method.output, data);
    } catch (e) {
      throw errorFromTransport(e as Error, timedOut());
    } finally {
      req.destroy();
    }
  };

  async function* serverStreaming(
    method: DescMethod,
    input: MessageInitShape<DescMessage>,
    call: CallOptions = {},
  ): AsyncGenerator<MessageShape<DescMessage>> {
    const body = envelope(0, toBinary(method.input, create(method.input, input)));
    const { res, req, timedOut } = await send(method, "application/connect+proto", body, call);
    // Leaving the loop early (break, return, an exception) ends the call and its connection.
    try {
      if (res.statusCode !== 200) throw errorFromBody(res.statusCode ?? 0, await readAll(res));
      let ended = false;
      for await (const { flags, data } of envelopes(res)) {
        if ((flags & 0b10) !== 0) {
          const end = JSON.parse(data.toString("utf8") || "{}") as { error?: unknown };
          if (end.error !== undefined) throw errorFromJson(end.error, Code.Unknown, "the call failed");
          ended = true;
          break;
        }
        if ((flags & 0b1) !== 0) throw new ConnectError("compressed message not requested", Code.Internal);
        yield fromBinary(method.output, data);
      }
      if (!ended) throw new ConnectError("the stream ended without an end-of-stream message", Code.DataLoss);
    } catch (e) {
      throw errorFromTransport(e as Error, timedOut());
    } finally {
      req.destroy();
    }
  }

  const client: Record<string, unknown> = {};
  for (const method of service.methods) {
    switch (method.methodKind) {
      case "unary":
        client[method.localName] = (input: MessageInitShape<DescMessage>, call?: CallOptions) =>
          unary(method, input, call);
        break;
      case "server_streaming":
        client[method.localName] = (input: MessageInitShape<DescMessage>, call?: CallOptions) =>
          serverStreaming(method, input, call);
        break;
      default:
        // Not part of the public API; calling it is a programming error.
        client[method.localName] = () => {
          throw new ConnectError(
            `${method.methodKind} is not supported by the CLI client`,
            Code.Unimplemented,
          );
        };
    }
  }
  return client as GatewayClient<S>;
}
