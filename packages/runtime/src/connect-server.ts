import { chmodSync, mkdirSync } from "node:fs";
import * as http2 from "node:http2";
import { dirname } from "node:path";
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "./logger.js";
import { REQUEST_ID_HEADER, newRequestId, sanitizeRequestId, withRequestId } from "./request-context.js";
import { reclaimSocketPath } from "./unix-socket.js";

export interface ConnectServerOptions {
  socketPath: string;
  routes: (router: ConnectRouter) => void;
  logger: Logger;
  /** The service's own interceptors (e.g. its error mapping), run inside the request context. */
  interceptors?: readonly Interceptor[];
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
 * Serves Connect over HTTP/2 (h2c) on a Unix socket with mode 0600.
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
  const server = http2.createServer(handler);
  const sessions = new Set<http2.Http2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
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
        for (const s of sessions) s.close();
        // Sessions that do not close politely are destroyed so shutdown is bounded.
        setTimeout(() => {
          for (const s of sessions) s.destroy();
        }, 2000).unref();
      });
      return closing;
    },
  };
}
