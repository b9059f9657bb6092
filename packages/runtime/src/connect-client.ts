import * as http from "node:http";
import * as net from "node:net";
import {
  Code,
  ConnectError,
  createClient,
  type CallOptions,
  type Client,
  type Interceptor,
} from "@connectrpc/connect";
import { Http2SessionManager, createConnectTransport } from "@connectrpc/connect-node";
import { validateReadWriteMaxBytes } from "@connectrpc/connect/protocol";
import { createTransport } from "@connectrpc/connect/protocol-connect";
import type { DescService } from "@bufbuild/protobuf";
import { REQUEST_ID_HEADER, currentRequestId } from "./request-context.js";
import { type RpcHttpVersion, rpcHttpVersion } from "./rpc-http-version.js";
import { createUnixHttp1Client } from "./unix-http1-client.js";

export interface ServiceClientOptions {
  /** Deadline for each call that does not set its own `timeoutMs`. */
  defaultTimeoutMs?: number;
  /** Must match the server's; defaults to BHATTI_RPC_HTTP_VERSION, i.e. HTTP/1.1 (see rpc-http-version.ts). */
  httpVersion?: RpcHttpVersion;
}

export interface ServiceClient<S extends DescService> {
  readonly client: Client<S>;
  /** Releases this client's connections so the process can exit. */
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
 * instead of a generic Internal. Applies to a stream's messages too, so a watch cut by the
 * service's death ends in Unavailable on either HTTP version.
 */
const unreachableIsUnavailable: Interceptor = (next) => async (req) => {
  let res: Awaited<ReturnType<typeof next>>;
  try {
    res = await next(req);
  } catch (e) {
    throw callError(e, req.signal);
  }
  if (!res.stream) return res;
  const messages = res.message;
  return {
    ...res,
    message: (async function* () {
      try {
        yield* messages;
      } catch (e) {
        throw callError(e, req.signal);
      }
    })(),
  };
};

function callError(e: unknown, signal: AbortSignal): ConnectError {
  if (isServiceUnreachable(e)) return e;
  const err = ConnectError.from(e);
  // Marked whatever code the transport chose: only a socket error, never an answer, says so.
  // On HTTP/1.1 a connection the service closed mid-call is such an error (ECONNRESET), as a
  // dead HTTP/2 session was: callers that resend on it (the wake's fallback) are idempotent.
  if (hasUnavailableErrno(e)) return new ServiceUnreachableError(err.rawMessage, e);
  // Canceled although our caller never aborted: the service went away mid-call
  // (killed, restarting), which is Unavailable (503, retry later), not a client's cancel (499).
  // Not a ServiceUnreachableError: the request may have been acted on, so it is no blind resend.
  if (err.code === Code.Canceled && !signal.aborted) {
    return new ConnectError(
      `the service stopped during the call: ${err.rawMessage}`,
      Code.Unavailable,
      undefined,
      undefined,
      e,
    );
  }
  return err;
}

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

/**
 * Idle keep-alive connections are closed by the client after this long, before the server's
 * keepAliveTimeout (connect-server.ts), so a call never picks a connection the server is closing.
 */
export const RPC_CLIENT_IDLE_MS = 30_000;

interface SharedAgent {
  readonly agent: http.Agent;
  users: number;
}

/** One keep-alive pool per socket path in this process, shared by every client of that service. */
const agents = new Map<string, SharedAgent>();

function acquireAgent(socketPath: string): http.Agent {
  let shared = agents.get(socketPath);
  if (shared === undefined) {
    shared = {
      // No cap on connections in use: HTTP/1.1 carries one call per connection, and the
      // server-streaming watches (vmm events, thermal) hold theirs for their lifetime. A cap
      // would queue unary calls behind them and behind long calls (create, checkpoint), which
      // HTTP/2's multiplexing never did; each service bounds its own work. Idle ones are capped.
      agent: new http.Agent({ keepAlive: true, maxFreeSockets: 16, timeout: RPC_CLIENT_IDLE_MS }),
      users: 0,
    };
    agents.set(socketPath, shared);
  }
  shared.users++;
  return shared.agent;
}

function releaseAgent(socketPath: string): void {
  const shared = agents.get(socketPath);
  if (shared === undefined || --shared.users > 0) return;
  agents.delete(socketPath);
  shared.agent.destroy();
}

/** A Connect client for a bhatti service on a Unix socket (HTTP/1.1 keep-alive, or HTTP/2 for a bench baseline). */
export function createServiceClient<S extends DescService>(
  service: S,
  socketPath: string,
  options: ServiceClientOptions = {},
): ServiceClient<S> {
  const baseUrl = "http://localhost";
  const interceptors = [unreachableIsUnavailable, forwardRequestId];
  const defaultTimeoutMs = options.defaultTimeoutMs ?? 30_000;
  if ((options.httpVersion ?? rpcHttpVersion()) === "1.1") {
    // connect-node's transport with our client (one write per request) and without compression:
    // on a local socket gzip only burns CPU on both sides (an 8 KiB answer cost the two processes
    // ~0.4 ms more with it, bench/h1rpc/cpu-per-call.ts).
    const transport = createTransport({
      httpClient: createUnixHttp1Client(acquireAgent(socketPath), socketPath),
      baseUrl,
      useBinaryFormat: true,
      interceptors,
      acceptCompression: [],
      sendCompression: null,
      ...validateReadWriteMaxBytes(undefined, undefined, undefined),
    });
    let closed = false;
    return {
      client: withDefaultTimeout(createClient(service, transport), defaultTimeoutMs),
      close: () => {
        if (closed) return;
        closed = true;
        releaseAgent(socketPath);
      },
    };
  }
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
    interceptors,
  });
  return {
    client: withDefaultTimeout(createClient(service, transport), defaultTimeoutMs),
    close: () => sessionManager.abort(),
  };
}
