import type { IncomingMessage, ServerResponse } from "node:http";
import { Code, ConnectError } from "@connectrpc/connect";
import { REQUEST_ID_HEADER, newRequestId, sanitizeRequestId, withRequestId } from "@bhatti/runtime";
import type { AuthenticatedUser } from "../auth/authenticated-user.js";
import type { GatewayContext } from "../gateway-context.js";
import { httpStatusOf } from "../http-status.js";
import { drainRefusedBody } from "../unread-body.js";
import { retryAfterOf } from "../limits/rate-limiter.js";
import { cleanPath } from "./clean-path.js";
import { MAX_JSON_BODY_BYTES, sendJson } from "./json-body.js";

export type HttpMethod = "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface RestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The cleaned path. */
  readonly path: string;
  readonly url: URL;
  /** `:name` segments of the pattern, and `*` for a trailing wildcard. */
  readonly params: Readonly<Record<string, string>>;
  /** The caller; undefined only on public routes. */
  readonly user: AuthenticatedUser | undefined;
  readonly requestId: string;
}

export type RestHandler = (ctx: RestContext) => Promise<void> | void;

/**
 * A route's OpenAPI operation: what /openapi.json says about it. The router keeps it next to the
 * handler, so the document lists exactly the routes that are served (fastify's route `schema`).
 */
export interface RouteDoc {
  readonly summary: string;
  readonly parameters?: readonly Record<string, unknown>[];
  readonly requestBody?: Record<string, unknown>;
  /** By HTTP status ("200", "404"...): description, headers and content schemas. */
  readonly responses: Readonly<Record<string, Record<string, unknown>>>;
}

export interface RouteOptions {
  /** Served without an API key (only /health in v1). */
  public?: boolean;
  /** The largest request body the route reads (default: the 1 MiB JSON cap), checked before auth. */
  maxBodyBytes?: number;
  /** The operation in the OpenAPI document; a route without one is left out of it. */
  doc?: RouteDoc;
}

/** A registered route as router.list() returns it. */
export interface RouteEntry {
  readonly method: HttpMethod;
  readonly pattern: string;
  readonly public: boolean;
  /** Served on the server's upgrade event (ws/websocket-routes.ts), never by handle(). */
  readonly websocket: boolean;
  readonly doc: RouteDoc | undefined;
}

export interface RestRouter {
  add(method: HttpMethod, pattern: string, handler: RestHandler, options?: RouteOptions): void;
  /**
   * Records a WebSocket endpoint (a GET answered with 101) so that list() and the document show it;
   * the upgrade itself is served by ws/websocket-routes.ts, and a plain GET stays a 404.
   */
  addWebSocket(pattern: string, doc: RouteDoc): void;
  /** Handles a request that no Connect procedure matched. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** Every registered route in registration order, WebSockets included: the OpenAPI document's source. */
  list(): RouteEntry[];
}

interface Route {
  readonly method: HttpMethod;
  readonly pattern: string;
  readonly segments: readonly string[];
  /** The pattern ends in `*` (matches any longer path). */
  readonly wildcard: boolean;
  readonly handler: RestHandler;
  readonly public: boolean;
  readonly maxBodyBytes: number;
  readonly doc: RouteDoc | undefined;
}

function match(segments: readonly string[], parts: readonly string[]): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i] ?? "";
    if (seg === "*") {
      params["*"] = parts.slice(i).join("/");
      return params;
    }
    const part = parts[i];
    if (part === undefined) return undefined;
    if (seg.startsWith(":")) params[seg.slice(1)] = part;
    else if (seg !== part) return undefined;
  }
  return parts.length === segments.length ? params : undefined;
}

/** The request target as a URL; `http://x:99999/` and other unparseable targets are a 400. */
function requestUrlOf(req: IncomingMessage): URL {
  try {
    return new URL(req.url ?? "/", "http://gateway");
  } catch {
    throw new ConnectError("bad request target", Code.InvalidArgument);
  }
}

/**
 * The body cap of the route, applied to the declared length before auth so that no one makes the
 * gateway wait for a body it would refuse (bodies without a length are counted as they are read).
 */
function checkDeclaredBodySize(req: IncomingMessage, limit: number): void {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit)
    throw new ConnectError(`request body larger than ${limit} bytes`, Code.InvalidArgument);
}

/** A 429 from before the route (the per-address limit of unauthenticated requests) says when to retry. */
function setRetryAfter(res: ServerResponse, e: ConnectError): void {
  const retryAfter = retryAfterOf(e);
  if (retryAfter !== undefined && !res.hasHeader("Retry-After"))
    res.setHeader("Retry-After", String(retryAfter));
}

const splitPath = (path: string) => path.split("/").filter((s) => s.length > 0);

/**
 * A small method + path router. Errors thrown by handlers are ConnectErrors mapped to HTTP
 * statuses with a `{"error": message}` body; anything else is a 500 carrying only the request
 * id, the detail going to the log.
 */
export function createRestRouter(gw: GatewayContext): RestRouter {
  const routes: Route[] = [];
  /** Routes and WebSocket endpoints in registration order, for list(). */
  const order: (Route | { pattern: string; doc: RouteDoc })[] = [];

  const fail = (req: IncomingMessage, res: ServerResponse, requestId: string, e: unknown) => {
    drainRefusedBody(req, res);
    if (res.headersSent) {
      gw.logger.warn("request failed after the response started", { error: e });
      res.destroy();
      return;
    }
    if (e instanceof ConnectError && e.code !== Code.Internal && e.code !== Code.Unknown) {
      setRetryAfter(res, e);
      sendJson(res, httpStatusOf(e.code), { error: e.rawMessage });
      return;
    }
    gw.logger.error("request failed", { error: e });
    sendJson(res, 500, { error: "internal error", request_id: requestId });
  };

  return {
    add(method, pattern, handler, options = {}) {
      const route: Route = {
        method,
        pattern,
        segments: splitPath(pattern),
        wildcard: splitPath(pattern).includes("*"),
        handler,
        public: options.public === true,
        maxBodyBytes: options.maxBodyBytes ?? MAX_JSON_BODY_BYTES,
        doc: options.doc,
      };
      routes.push(route);
      order.push(route);
    },
    addWebSocket(pattern, doc) {
      order.push({ pattern, doc });
    },
    list: () =>
      order.map((r) =>
        "handler" in r
          ? { method: r.method, pattern: r.pattern, public: r.public, websocket: false, doc: r.doc }
          : { method: "GET", pattern: r.pattern, public: false, websocket: true, doc: r.doc },
      ),
    async handle(req, res) {
      const requestId =
        sanitizeRequestId(req.headers[REQUEST_ID_HEADER] as string | undefined) ?? newRequestId();
      await withRequestId(requestId, async () => {
        try {
          const url = requestUrlOf(req);
          const path = cleanPath(url.pathname);
          const parts = splitPath(path);
          const method = (req.method ?? "GET").toUpperCase();
          const candidates: { route: Route; params: Record<string, string> }[] = [];
          for (const route of routes) {
            // Most routes differ in length: skip them before building their params.
            if (!route.wildcard && route.segments.length !== parts.length) continue;
            const params = match(route.segments, parts);
            if (params !== undefined) candidates.push({ route, params });
          }
          const found =
            candidates.find((c) => c.route.method === method) ??
            (method === "HEAD" ? candidates.find((c) => c.route.method === "GET") : undefined);
          checkDeclaredBodySize(req, found?.route.maxBodyBytes ?? MAX_JSON_BODY_BYTES);
          let user: AuthenticatedUser | undefined;
          if (found === undefined || !found.route.public) {
            user = await gw.auth.authenticate(req.headers.authorization, {
              remoteAddr: req.socket.remoteAddress ?? "",
              path,
            });
          }
          if (found === undefined) {
            drainRefusedBody(req, res);
            if (candidates.length > 0) sendJson(res, 405, { error: "method not allowed" });
            else sendJson(res, 404, { error: "not found" });
            return;
          }
          await found.route.handler({ req, res, path, url, params: found.params, user, requestId });
        } catch (e) {
          fail(req, res, requestId, e);
        }
      });
    },
  };
}
