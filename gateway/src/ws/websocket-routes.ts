import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { BHATTI_VERSION } from "@bhatti/runtime";
import { Code, ConnectError } from "@connectrpc/connect";
import { WebSocketServer } from "ws";
import type { GatewayContext } from "../gateway-context.js";
import { httpStatusOf } from "../http-status.js";
import { retryAfterOf } from "../limits/rate-limiter.js";
import { cleanPath } from "../rest/clean-path.js";
import { shareSocketPattern, upgradeShareSocket } from "../share/share-socket.js";
import { serveExecSocket } from "./exec-socket.js";
import { serveShellSocket } from "./shell-socket.js";

export interface WebSocketRoutes {
  /** Closes every live WebSocket (1001 going away). */
  close(): void;
}

const statusText: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  404: "Not Found",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

/** Answers an upgrade request with a plain HTTP error (same JSON body as the REST API). */
function reject(socket: Duplex, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  const headers = {
    "Content-Type": "application/json",
    "Content-Length": String(Buffer.byteLength(text)),
    "X-Bhatti-Version": BHATTI_VERSION,
    Connection: "close",
    ...extra,
  };
  socket.end(
    `HTTP/1.1 ${status} ${statusText[status] ?? "Error"}\r\n${Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}`)
      .join("\r\n")}\r\n\r\n${text}`,
  );
}

/** The request target as a URL, or undefined when it does not parse (`http://x:99999/`, `//x:99999/`). */
function requestUrlOf(req: IncomingMessage): URL | undefined {
  try {
    return new URL(req.url ?? "/", "http://gateway");
  } catch {
    return undefined;
  }
}

const shellPattern = /^\/sandboxes\/([^/]+)\/ws$/;
const execPattern = /^\/sandboxes\/([^/]+)\/exec\/ws$/;

/**
 * WebSocket endpoints on the gateway's server: the TTY shell `/sandboxes/:id/ws` and the
 * piped session `/sandboxes/:id/exec/ws`. Auth is the Bearer header only (query tokens are
 * never read), checked on the cleaned path before anything else; another user's sandbox is 404.
 */
export function registerWebSocketRoutes(server: Server, gw: GatewayContext): WebSocketRoutes {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20 });
  const { agent, wake, limiter } = gw.runtime;
  const deps = { wake, clients: gw.clients, logger: gw.logger };

  const handle = async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    try {
      const url = requestUrlOf(req);
      if (url === undefined) {
        reject(socket, 400, { error: "bad request target" });
        return;
      }
      const path = cleanPath(url.pathname);
      // A share link's socket carries its own token instead of an API key.
      const share = shareSocketPattern.exec(path);
      if (share !== null) {
        await upgradeShareSocket(gw, wss, req, socket, head, share[1] ?? "");
        return;
      }
      const user = await gw.auth.authenticate(req.headers.authorization, {
        remoteAddr: req.socket.remoteAddress ?? "",
        path,
      });
      const shell = shellPattern.exec(path);
      const exec = shell === null ? execPattern.exec(path) : null;
      const ref = shell?.[1] ?? exec?.[1];
      if (ref === undefined) {
        reject(socket, 404, { error: "not found" });
        return;
      }
      limiter.take(user.record, "exec");
      const sandbox = await agent.interactive(user, ref);
      const sandboxId = sandbox.sandboxId;
      const sessionId = url.searchParams.get("session") ?? undefined;
      wss.handleUpgrade(req, socket, head, (ws) => {
        // Without a listener, a frame ws refuses (over maxPayload, bad UTF-8, RSV bits, bad
        // opcode or close code) is an 'error' event that throws and ends the whole gateway.
        ws.on("error", (e: Error) => {
          gw.logger.warn("websocket closed on a bad frame", { sandbox_id: sandboxId, error: e.message });
          ws.terminate();
        });
        // Revoking the key (rotation, user deletion) closes this socket: 1008 "api key revoked".
        const untrack = gw.auth.sessions.register(user, { end: (reason) => ws.close(1008, reason) });
        ws.once("close", untrack);
        const served =
          shell !== null
            ? serveShellSocket(ws, deps, {
                sandbox,
                userId: user.id,
                sessionId,
                forceNew: url.searchParams.get("new") === "true",
              })
            : serveExecSocket(ws, deps, { sandbox, userId: user.id, sessionId });
        served.catch((e: unknown) => {
          gw.logger.error("websocket handler failed", { error: e });
          ws.terminate();
        });
      });
    } catch (e) {
      const err = e instanceof ConnectError ? e : undefined;
      if (err === undefined || err.code === Code.Internal || err.code === Code.Unknown) {
        gw.logger.error("websocket upgrade failed", { error: e });
        reject(socket, 500, { error: "internal error" });
        return;
      }
      const retryAfter = retryAfterOf(err);
      reject(
        socket,
        httpStatusOf(err.code),
        { error: err.rawMessage },
        retryAfter !== undefined ? { "Retry-After": String(retryAfter) } : {},
      );
    }
  };

  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => socket.destroy());
    handle(req, socket, head).catch((e: unknown) => {
      gw.logger.error("websocket upgrade handler failed", { error: e });
      socket.destroy();
    });
  });

  return {
    close() {
      for (const client of wss.clients) client.close(1001, "server shutting down");
      wss.close();
    },
  };
}
