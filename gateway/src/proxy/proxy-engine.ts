import type * as http from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "@bhatti/runtime";
import { createProxyServer } from "http-proxy-3";
import type { WakeController } from "../wake/wake-controller.js";
import type { AppDialer } from "./app-dialer.js";
import { DialedSocketAgent } from "./dialed-socket-agent.js";
import { relayHttp } from "./http-relay.js";
import { createForwardAgentPool } from "./forward-agent-pool.js";
import { stripHopByHop } from "./hop-by-hop.js";
import { plainReply, proxyErrorReply, sendReply, writeSocketReply } from "./proxy-responses.js";

/** v1's cap on a proxied request body (non-GET/HEAD). */
export const MAX_PROXY_BODY_BYTES = 50 * 1024 * 1024;

/** Where a proxied request goes: a port inside a sandbox, and the path the app sees. */
export interface ProxyTarget {
  readonly sandboxId: string;
  readonly port: number;
  /** Path and query sent to the app (any public prefix already stripped). */
  readonly path: string;
  /** Removes the caller's Authorization header (it was the owner's API key, not the app's). */
  readonly stripAuthorization: boolean;
}

/**
 * The proxy's engine, shared by preview URLs and the authenticated proxy: wakes the sandbox
 * (single-flight in the wake controller, bounded by its deadline), dials the app (at the
 * sandbox's address, or through the agent's forward port for an app on 127.0.0.1 only: see
 * AppDialer; no host port per sandbox either way) and relays over pooled keep-alive
 * connections: HTTP requests with relayHttp (see http-relay.ts for why not http-proxy-3's
 * web()), WebSockets with http-proxy-3, streamed both ways with no buffering.
 * A request in progress holds the sandbox hot; an open WebSocket counts as an interactive client.
 */
export interface ProxyEngine {
  web(req: IncomingMessage, res: ServerResponse, target: ProxyTarget): Promise<void>;
  ws(req: IncomingMessage, socket: Duplex, head: Buffer, target: ProxyTarget): Promise<void>;
  /** Closes the pooled connections to apps. */
  close(): void;
}

export interface ProxyEngineOptions {
  wake: WakeController;
  /** Connections to apps (at the sandbox's address, or through the sandbox agent). */
  dialer: AppDialer;
  logger: Logger;
  /** No traffic either way for this long closes the request or WebSocket. */
  idleTimeoutMs: number;
  /** How long a pooled connection to an app may stay idle. */
  poolIdleMs: number;
  maxBodyBytes?: number;
}

/** A WebSocket handshake as the app sees it (http-proxy-3 adds X-Forwarded-* and Host). */
function prepareUpgrade(req: IncomingMessage, target: ProxyTarget): void {
  stripHopByHop(req.headers, true);
  if (target.stripAuthorization) delete req.headers.authorization;
  req.url = target.path;
}

export function createProxyEngine(options: ProxyEngineOptions): ProxyEngine {
  const { wake, logger, idleTimeoutMs } = options;
  const maxBodyBytes = options.maxBodyBytes ?? MAX_PROXY_BODY_BYTES;
  const proxy = createProxyServer({
    xfwd: true,
    // The app sees Host: localhost:<port> (dev servers such as Vite refuse unknown hosts);
    // the original host is in X-Forwarded-Host.
    changeOrigin: true,
    proxyTimeout: idleTimeoutMs,
  });
  // Errors are handled per call (the callbacks below); this keeps an unexpected one from throwing.
  proxy.on("error", (err) => logger.debug("proxy error", { error: err }));

  const { dialer } = options;
  const dial = (target: ProxyTarget, signal: AbortSignal) =>
    dialer.dial(target.sandboxId, target.port, signal);
  const pool = createForwardAgentPool((sandboxId, port) => dialer.dial(sandboxId, port), {
    idleMs: options.poolIdleMs,
  });
  const stopDropping = wake.onLeftHot((sandboxId) => pool.dropSandbox(sandboxId));
  return {
    close: () => {
      stopDropping();
      pool.close();
    },

    async web(req, res, target) {
      const method = (req.method ?? "GET").toUpperCase();
      const hasBody = method !== "GET" && method !== "HEAD";
      const declared = Number(req.headers["content-length"] ?? 0);
      if (hasBody && declared > maxBodyBytes) {
        sendReply(res, plainReply(413, `request body larger than ${maxBodyBytes} bytes`));
        res.once("finish", () => req.destroy());
        return;
      }
      // Made only when a retry needs to dial (an abort's DOMException is not free per request).
      let aborted: AbortController | undefined;
      let closed = false;
      const release = wake.hold(target.sandboxId);
      res.once("close", () => {
        closed = true;
        release();
        aborted?.abort();
        wake.touch(target.sandboxId);
      });
      try {
        // Wake errors keep their status (503/504/404); a no-op while the sandbox is known hot.
        await wake.ensureHot(target.sandboxId);
      } catch (e) {
        if (!closed) sendReply(res, proxyErrorReply(e, target.port));
        return;
      }
      if (res.destroyed) return;
      if (hasBody && req.headers["content-length"] === undefined) {
        // A body without a declared length is counted as it streams.
        let seen = 0;
        req.on("data", (chunk: Buffer) => {
          seen += chunk.byteLength;
          if (seen > maxBodyBytes) {
            sendReply(res, plainReply(413, `request body larger than ${maxBodyBytes} bytes`));
            req.destroy();
          }
        });
      }
      const send = (agent: http.Agent, retried: boolean) =>
        relayHttp(req, res, target, agent, {
          idleTimeoutMs,
          onError: (err, outgoing) => {
            if (!retried && outgoing.reusedSocket && !hasBody && !closed) {
              // A pooled connection died while idle (the app restarted, the sandbox was
              // restored): a request without a body is safely sent again on a fresh one.
              aborted = new AbortController();
              dial(target, aborted.signal).then(
                (socket) => send(new DialedSocketAgent(socket), true),
                (e: unknown) => sendReply(res, proxyErrorReply(e, target.port)),
              );
              return;
            }
            if (!res.writableEnded) sendReply(res, proxyErrorReply(err, target.port));
          },
        });
      send(pool.agentFor(target.sandboxId, target.port), false);
    },

    async ws(req, socket, head, target) {
      const aborted = new AbortController();
      const release = wake.interactive.attach(target.sandboxId);
      socket.once("close", () => {
        release();
        aborted.abort();
        wake.touch(target.sandboxId);
      });
      let upstream: Duplex;
      try {
        upstream = await dial(target, aborted.signal);
      } catch (e) {
        if (!aborted.signal.aborted) writeSocketReply(socket, proxyErrorReply(e, target.port));
        return;
      }
      if (socket.destroyed) {
        upstream.destroy();
        return;
      }
      prepareUpgrade(req, target);
      proxy.ws(
        req,
        socket,
        head,
        { target: `http://localhost:${target.port}`, agent: new DialedSocketAgent(upstream) },
        (err) => {
          upstream.destroy();
          writeSocketReply(socket, proxyErrorReply(err, target.port));
        },
      );
      // After proxy.ws (which clears socket timeouts): an idle WebSocket is closed.
      const idle = socket as Duplex & { setTimeout?: (ms: number, cb: () => void) => void };
      idle.setTimeout?.(idleTimeoutMs, () => socket.destroy());
      upstream.on("data", () => wake.touch(target.sandboxId));
    },
  };
}
