import * as net from "node:net";
import {
  Code,
  ConnectError,
  createClient,
  type CallOptions,
  type Client,
  type Interceptor,
} from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { REQUEST_ID_HEADER, currentRequestId } from "./request-context.js";

export interface ServiceClientOptions {
  /** Deadline for each call that does not set its own `timeoutMs`. */
  defaultTimeoutMs?: number;
}

export interface ServiceClient<S extends DescService> {
  readonly client: Client<S>;
  /** Closes the HTTP/2 session so the process can exit. */
  close(): void;
}

const unavailableErrnos = new Set(["ENOENT", "ECONNREFUSED", "ECONNRESET", "EPIPE"]);

const unreachableBrand: unique symbol = Symbol("bhatti.serviceUnreachable");

/**
 * This process could not reach the service (no socket file, nobody listening, or it went away
 * mid-call), as opposed to the service answering Unavailable itself (busy, or one of *its*
 * dependencies down). Code Unavailable, so callers may retry; test with `instanceof` or
 * `isServiceUnreachable`, never with the message. It never crosses the wire: a service that
 * passes it on sends a plain Unavailable.
 */
export class ServiceUnreachableError extends ConnectError {
  readonly [unreachableBrand] = true;

  constructor(message: string, cause: unknown) {
    super(`service unavailable: ${message}`, Code.Unavailable, undefined, undefined, cause);
  }

  // ConnectError's own check accepts any ConnectError (it duck-types across copies of the
  // library); this subclass must only accept its own instances.
  static override [Symbol.hasInstance](v: unknown): boolean {
    return isServiceUnreachable(v);
  }
}

export function isServiceUnreachable(e: unknown): e is ServiceUnreachableError {
  return (
    typeof e === "object" && e !== null && (e as { [unreachableBrand]?: unknown })[unreachableBrand] === true
  );
}

/**
 * The service is down: callers see Unavailable (ServiceUnreachableError), which they may retry,
 * instead of a generic Internal.
 */
const unreachableIsUnavailable: Interceptor = (next) => async (req) => {
  try {
    return await next(req);
  } catch (e) {
    if (isServiceUnreachable(e)) throw e;
    const err = ConnectError.from(e);
    // Marked whatever code the transport chose: only a socket error, never an answer, says so.
    if (hasUnavailableErrno(e)) throw new ServiceUnreachableError(err.rawMessage, e);
    // Canceled although our caller never aborted: the service went away mid-call (killed,
    // restarting), which is Unavailable (503, retry later), not a client's cancel (499). Not a
    // ServiceUnreachableError: the request may have been acted on, so it is no blind resend.
    if (err.code === Code.Canceled && !req.signal.aborted) {
      throw new ConnectError(
        `the service stopped during the call: ${err.rawMessage}`,
        Code.Unavailable,
        undefined,
        undefined,
        e,
      );
    }
    throw err;
  }
};

function hasUnavailableErrno(e: unknown): boolean {
  for (let cur: unknown = e, depth = 0; cur !== undefined && cur !== null && depth < 5; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === "string" && unavailableErrnos.has(code)) return true;
    cur = (cur as { cause?: unknown }).cause;
  }
  return false;
}

/** Passes the current request id on, so one request can be followed across processes. */
const forwardRequestId: Interceptor = (next) => (req) => {
  const id = currentRequestId();
  if (id !== undefined && !req.header.has(REQUEST_ID_HEADER)) req.header.set(REQUEST_ID_HEADER, id);
  return next(req);
};

/**
 * Every call gets a deadline: the caller's `timeoutMs`, or the default. Long streams
 * (exec output, event feeds) pass their own.
 */
function withDefaultTimeout<S extends DescService>(client: Client<S>, timeoutMs: number): Client<S> {
  return new Proxy(client, {
    get(target, prop, receiver) {
      const member: unknown = Reflect.get(target, prop, receiver);
      if (typeof member !== "function") return member;
      return (request: unknown, options?: CallOptions) =>
        (member as (r: unknown, o: CallOptions) => unknown).call(target, request, { timeoutMs, ...options });
    },
  });
}

/** A Connect client for a bhatti service on a Unix socket, over HTTP/2. */
export function createServiceClient<S extends DescService>(
  service: S,
  socketPath: string,
  options: ServiceClientOptions = {},
): ServiceClient<S> {
  const baseUrl = "http://localhost";
  const sessionManager = new Http2SessionManager(
    baseUrl,
    { idleConnectionTimeoutMs: 60_000 },
    {
      createConnection: () => net.connect(socketPath),
    },
  );
  const transport = createConnectTransport({
    httpVersion: "2",
    baseUrl,
    sessionManager,
    interceptors: [unreachableIsUnavailable, forwardRequestId],
  });
  return {
    client: withDefaultTimeout(createClient(service, transport), options.defaultTimeoutMs ?? 30_000),
    close: () => sessionManager.abort(),
  };
}
