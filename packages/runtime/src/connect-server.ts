import { chmodSync, mkdirSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import { dirname } from "node:path";
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "./logger.js";
import { REQUEST_ID_HEADER, newRequestId, sanitizeRequestId, withRequestId } from "./request-context.js";
import { type RpcHttpVersion, rpcHttpVersion } from "./rpc-http-version.js";
import { reclaimSocketPath } from "./unix-socket.js";

export interface ConnectServerOptions {
  socketPath: string;
  routes: (router: ConnectRouter) => void;
  logger: Logger;
  /** The service's own interceptors (e.g. its error mapping), run inside the request context. */
  interceptors?: readonly Interceptor[];
  /** Must match the clients'; defaults to BHATTI_RPC_HTTP_VERSION, i.e. HTTP/1.1 (see rpc-http-version.ts). */
  httpVersion?: RpcHttpVersion;
}

/**
 * How long an idle keep-alive connection is kept. Longer than the clients' own idle close
 * (RPC_CLIENT_IDLE_MS), so the client always closes first and never reuses a closing connection.
 */
export const RPC_SERVER_KEEP_ALIVE_MS = 60_000;

/** Open calls get this long to finish on close before their connections are cut. */
const CLOSE_GRACE_MS = 2000;

type Handler = ReturnType<typeof connectNodeAdapter>;

interface ListeningServer {
  readonly server: http.Server | http2.Http2Server;
  /** Ends idle connections now and lets open calls finish. */
  closeIdle(): void;
  /** Cuts every connection still open. */
  destroyAll(): void;
}

function http1Server(handler: Handler): ListeningServer {
  const server = http.createServer({ keepAliveTimeout: RPC_SERVER_KEEP_ALIVE_MS }, handler);
  return {
    server,
    closeIdle: () => server.closeIdleConnections(),
    destroyAll: () => server.closeAllConnections(),
  };
}

function http2Server(handler: Handler): ListeningServer {
  const server = http2.createServer(handler);
  const sessions = new Set<http2.Http2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  return {
    server,
    closeIdle: () => {
      for (const s of sessions) s.close();
    },
    destroyAll: () => {
      for (const s of sessions) s.destroy();
    },
  };
}

export interface ConnectServer {
  readonly socketPath: string;
  /** Stops accepting calls, ends open sessions and removes the socket file. */
  close(): Promise<void>;
}

/**
 * Gives each call a request id (the caller's, or a new one), runs the handler inside it so
 * logs and outgoing calls carry it, and logs failures. Unexpected errors become Internal
 * without their detail, which stays in this process's log.
 */
export function requestContextInterceptor(logger: Logger): Interceptor {
  return (next) => (req) => {
    const requestId = sanitizeRequestId(req.header.get(REQUEST_ID_HEADER)) ?? newRequestId();
    return withRequestId(requestId, async () => {
      try {
        return await next(req);
      } catch (e) {
        // The caller went away (aborted, or its deadline passed): whatever the handler threw on
        // the way out is no failure of ours. Over HTTP/1.1 the signal carries no Connect code
        // (the connection just closed), so handlers that pass it on throw a bare AbortError.
        if (req.signal.aborted) {
          logger.debug("rpc ended: the caller went away", { method: req.method.name });
          throw ConnectError.from(req.signal.reason ?? e, Code.Canceled);
        }
        if (e instanceof ConnectError) {
          if (e.code === Code.Internal || e.code === Code.Unknown) {
            logger.error("rpc failed", {
              method: req.method.name,
              code: Code[e.code],
              error: e.rawMessage,
              cause: e.cause,
            });
          }
          throw e;
        }
        logger.error("rpc failed with an unexpected error", { method: req.method.name, error: e });
        throw new ConnectError(`internal error (request ${requestId})`, Code.Internal);
      }
    });
  };
}

/**
 * Serves Connect on a Unix socket with mode 0600, over HTTP/1.1 (or HTTP/2 for a bench baseline).
 * A stale socket file is reclaimed; a live one makes this fail with SocketInUseError.
 */
export async function startConnectServer(options: ConnectServerOptions): Promise<ConnectServer> {
  const { socketPath, logger } = options;
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o755 });
  await reclaimSocketPath(socketPath);
  const handler = connectNodeAdapter({
    routes: options.routes,
    interceptors: [requestContextInterceptor(logger), ...(options.interceptors ?? [])],
  });
  const { server, closeIdle, destroyAll } =
    (options.httpVersion ?? rpcHttpVersion()) === "1.1" ? http1Server(handler) : http2Server(handler);
  // Sockets are created with the umask; restrict before anyone can connect by listening under a tight umask.
  const previousUmask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(socketPath, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } finally {
    process.umask(previousUmask);
  }
  chmodSync(socketPath, 0o600);
  logger.info("serving", { socket: socketPath });
  let closing: Promise<void> | undefined;
  return {
    socketPath,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        closeIdle();
        // Connections that do not close politely are destroyed so shutdown is bounded.
        setTimeout(destroyAll, CLOSE_GRACE_MS).unref();
      });
      return closing;
    },
  };
}
