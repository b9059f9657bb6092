import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { AGENT_CONTROL_PORT, AGENT_FORWARD_PORT } from "@bhatti/agent-protocol";
import { Code, ConnectError } from "@connectrpc/connect";
import type { GatewayContext } from "../gateway-context.js";
import { createIpRateLimiter } from "../limits/ip-rate-limiter.js";
import type { AliasCache } from "./alias-cache.js";
import type { AppDialer } from "./app-dialer.js";
import { type ProxyEngine, type ProxyTarget, createProxyEngine } from "./proxy-engine.js";
import { plainReply, proxyErrorReply, sendReply, writeSocketReply } from "./proxy-responses.js";
import { RESERVED_ALIASES, aliasOfHost, aliasOfPath, hostnameOf, ownerProxyPath } from "./preview-host.js";

/** Which listener a request came in on: the API's (`listen`) or the public proxy's (`proxy_listen`). */
export type ListenerKind = "api" | "public";

/**
 * Routes requests to published ports, before the API sees them:
 * - domain mode: `Host: <alias>.<proxy_zone>` on either listener;
 * - path mode: `/<alias>/...` on the public listener (the prefix is stripped; `/<alias>` redirects);
 * - the owner's authenticated proxy `ANY /sandboxes/:id/proxy/:port/*` on the API listener.
 * Every other request on the API listener is left to the API (`claims` is false).
 */
export interface PreviewProxy {
  claims(req: IncomingMessage, listener: ListenerKind): boolean;
  handle(req: IncomingMessage, res: ServerResponse, listener: ListenerKind): void;
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, listener: ListenerKind): void;
  close(): void;
}

type Route =
  | { kind: "target"; target: ProxyTarget; limitKey: string | undefined }
  | { kind: "redirect"; location: string };

const AGENT_PORTS = new Set([AGENT_CONTROL_PORT, AGENT_FORWARD_PORT]);

/** A user port: 1..65535 and not one of the agent's own. */
export function checkProxyPort(raw: unknown): number {
  const port = typeof raw === "string" && /^\d{1,5}$/.test(raw) ? Number(raw) : raw;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535)
    throw new ConnectError(
      `invalid port ${JSON.stringify(raw)}: must be an integer in 1..65535`,
      Code.InvalidArgument,
    );
  if (AGENT_PORTS.has(port))
    throw new ConnectError(`port ${port} is the sandbox agent's own`, Code.InvalidArgument);
  return port;
}

export function createPreviewProxy(gw: GatewayContext, aliases: AliasCache, dialer: AppDialer): PreviewProxy {
  const { config } = gw;
  const zone = config.proxy_zone.toLowerCase();
  const engine: ProxyEngine = createProxyEngine({
    wake: gw.runtime.wake,
    dialer,
    logger: gw.logger.child({ component: "proxy" }),
    idleTimeoutMs: config.proxy_idle_timeout,
    // Pooled connections are dropped when the sandbox leaves hot, so they need not expire
    // before the thermal policy pauses it; Node apps cap this at their keep-alive (5 s - 1 s).
    poolIdleMs: 30_000,
  });
  const perIp = createIpRateLimiter({
    capacity: config.proxy_rate_ip_burst,
    perMinute: config.proxy_rate_ip_per_minute,
    maxAddresses: 10_000,
  });
  const perAlias = createIpRateLimiter({
    capacity: config.proxy_rate_alias_burst,
    perMinute: config.proxy_rate_alias_per_minute,
    maxAddresses: 10_000,
  });

  const kindOf = (req: IncomingMessage, listener: ListenerKind) => {
    const alias = aliasOfHost(req.headers.host, zone);
    // A reserved name under the zone (api.<zone>, www.<zone>) is the API's on its listener.
    if (alias !== undefined && !(listener === "api" && RESERVED_ALIASES.has(alias)))
      return { mode: "domain" as const, alias };
    if (listener === "public") return { mode: "path" as const };
    if ((req.url ?? "").startsWith("/sandboxes/") && ownerProxyPath(req.url ?? "") !== undefined)
      return { mode: "owner" as const };
    return undefined;
  };

  const aliasTarget = async (req: IncomingMessage, alias: string, path: string): Promise<Route> => {
    if (alias === "") throw new ConnectError("unknown host", Code.NotFound);
    const rule = await aliases.resolve(alias);
    if (rule === undefined) throw new ConnectError(`unknown alias ${JSON.stringify(alias)}`, Code.NotFound);
    if (rule.private) {
      // A private preview needs the owner's key; anyone else learns nothing about it.
      const user = await gw.auth.authenticate(req.headers.authorization, {
        remoteAddr: req.socket.remoteAddress ?? "",
        path: "/",
      });
      if (user.id !== rule.userId)
        throw new ConnectError(`unknown alias ${JSON.stringify(alias)}`, Code.NotFound);
    }
    return {
      kind: "target",
      target: { sandboxId: rule.sandboxId, port: rule.port, path, stripAuthorization: rule.private },
      limitKey: alias,
    };
  };

  const route = async (req: IncomingMessage, listener: ListenerKind): Promise<Route> => {
    const kind = kindOf(req, listener);
    const url = req.url ?? "/";
    if (kind?.mode === "domain") return aliasTarget(req, kind.alias, url.startsWith("/") ? url : `/${url}`);
    if (kind?.mode === "path") {
      const parsed = aliasOfPath(url);
      if (parsed === undefined) {
        throw new ConnectError(
          hostnameOf(req.headers.host) === "" || url === "/"
            ? "no published port here: use /<alias>/"
            : "unknown alias",
          Code.NotFound,
        );
      }
      // Resolve first: an unknown alias is a 404, never a redirect.
      const target = await aliasTarget(req, parsed.alias, parsed.path);
      return parsed.redirect ? { kind: "redirect", location: parsed.path } : target;
    }
    // The owner's authenticated proxy.
    const owner = ownerProxyPath(url);
    if (owner === undefined) throw new ConnectError("not found", Code.NotFound);
    const user = await gw.auth.authenticate(req.headers.authorization, {
      remoteAddr: req.socket.remoteAddress ?? "",
      path: "/sandboxes/proxy",
    });
    const port = checkProxyPort(owner.port);
    let ref: string;
    try {
      ref = decodeURIComponent(owner.ref);
    } catch {
      throw new ConnectError("bad sandbox reference", Code.InvalidArgument);
    }
    const sandboxId = await gw.runtime.sandboxes.resolveId(user, ref);
    if (owner.redirect) return { kind: "redirect", location: owner.path };
    return {
      kind: "target",
      target: { sandboxId, port, path: owner.path, stripAuthorization: true },
      limitKey: undefined,
    };
  };

  // Per address before any lookup (unknown aliases cost a store query), per alias once known.
  const limitIp = (req: IncomingMessage) => perIp.take(req.socket.remoteAddress ?? "");
  const limitAlias = (limitKey: string | undefined) => {
    if (limitKey !== undefined) perAlias.take(limitKey);
  };

  return {
    claims: (req, listener) => kindOf(req, listener) !== undefined,
    close: () => engine.close(),

    handle(req, res, listener) {
      void (async () => {
        try {
          limitIp(req);
          const r = await route(req, listener);
          if (r.kind === "redirect") {
            req.resume();
            res.writeHead(301, { Location: r.location, "Content-Length": "0" });
            res.end();
            return;
          }
          limitAlias(r.limitKey);
          await engine.web(req, res, r.target);
        } catch (e) {
          req.resume();
          sendReply(res, proxyErrorReply(e, 0));
        }
      })().catch((e: unknown) => {
        gw.logger.error("proxy request failed", { error: e });
        res.destroy();
      });
    },

    upgrade(req, socket, head, listener) {
      socket.on("error", () => socket.destroy());
      void (async () => {
        try {
          limitIp(req);
          const r = await route(req, listener);
          if (r.kind === "redirect") {
            writeSocketReply(socket, plainReply(404, "a WebSocket path needs the trailing /"));
            return;
          }
          limitAlias(r.limitKey);
          await engine.ws(req, socket, head, r.target);
        } catch (e) {
          writeSocketReply(socket, proxyErrorReply(e, 0));
        }
      })().catch((e: unknown) => {
        gw.logger.error("proxy upgrade failed", { error: e });
        socket.destroy();
      });
    },
  };
}
