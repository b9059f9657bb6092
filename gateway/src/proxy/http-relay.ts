import * as http from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import { TLSSocket } from "node:tls";
import { HOP_BY_HOP } from "./hop-by-hop.js";

/**
 * Relays one HTTP/1.1 request to the app over `agent` (a keep-alive pool of forward channels)
 * and streams the response back, with no buffering either way.
 *
 * Written for the proxy's hot path instead of http-proxy-3's `web()`: headers are copied once,
 * as flat raw arrays (no per-header `setHeader`, no header objects rebuilt), and a request
 * without a body is sent at once instead of after its (empty) body has been piped. The proxy
 * bench measured the difference (bench/proxy/results-2026-12-03.txt). WebSockets still go
 * through http-proxy-3 (once per connection, not per request).
 *
 * What the app receives, as with http-proxy-3's `xfwd` + `changeOrigin` before:
 * - `Host: localhost:<port>` (dev servers refuse unknown hosts); the caller's host in X-Forwarded-Host;
 * - X-Forwarded-For/-Port/-Proto with this hop appended to what the caller sent;
 * - no hop-by-hop headers (the fixed list and those named in `Connection`), no `Authorization`
 *   when `stripAuthorization` (it was the owner's API key).
 * What the caller receives: the app's status and headers minus hop-by-hop ones; this server
 * frames the body itself (chunked or length) and manages its own keep-alive.
 */
export interface RelayTarget {
  readonly port: number;
  /** Path and query sent to the app. */
  readonly path: string;
  readonly stripAuthorization: boolean;
}

export interface RelayOptions {
  /** No bytes from the app for this long ends the request (502/reset). */
  readonly idleTimeoutMs: number;
  /** The outgoing request failed before a response started (dead connection, refused, timeout). */
  readonly onError: (err: Error, outgoing: http.ClientRequest) => void;
}

/** Request headers never forwarded as they came (Host and X-Forwarded-* are set again below). */
const DROPPED_REQUEST_HEADERS = new Set([
  ...HOP_BY_HOP,
  "host",
  "connection",
  "upgrade",
  "x-forwarded-for",
  "x-forwarded-port",
  "x-forwarded-proto",
  "x-forwarded-host",
]);

/** Response headers that describe the app's connection, not the caller's. */
const DROPPED_RESPONSE_HEADERS = new Set([...HOP_BY_HOP, "connection", "transfer-encoding", "upgrade"]);

/** Names listed in a `Connection` header (themselves hop-by-hop), lower-cased. */
function connectionNamed(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  const named = new Set<string>();
  for (const part of (Array.isArray(value) ? value.join(",") : value).split(",")) {
    const name = part.trim().toLowerCase();
    if (name !== "") named.add(name);
  }
  return named.size > 0 ? named : undefined;
}

/** The message's raw [name, value, ...] list without `dropped`, the names its `Connection` lists and `also`. */
function keptRawHeaders(message: IncomingMessage, dropped: ReadonlySet<string>, also: string): string[] {
  const raw = message.rawHeaders;
  const named = connectionNamed(message.headers.connection);
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (dropped.has(lower) || named?.has(lower) || lower === also) continue;
    out.push(name, raw[i + 1] as string);
  }
  return out;
}

const appended = (previous: string | undefined, value: string) =>
  previous === undefined || previous === "" ? value : `${previous},${value}`;

/** The flat [name, value, ...] list the app receives. */
export function forwardedRequestHeaders(req: IncomingMessage, target: RelayTarget): string[] {
  const out = keptRawHeaders(req, DROPPED_REQUEST_HEADERS, target.stripAuthorization ? "authorization" : "");
  const host = req.headers.host;
  const encrypted = req.socket instanceof TLSSocket && req.socket.encrypted;
  const headerPort = host === undefined ? undefined : /:(\d+)/.exec(host)?.[1];
  const joined = (h: string) => {
    const v = req.headers[h];
    return Array.isArray(v) ? v.join(",") : v;
  };
  out.push(
    "host",
    target.port === 80 ? "localhost" : `localhost:${target.port}`,
    "x-forwarded-for",
    appended(joined("x-forwarded-for"), req.socket.remoteAddress ?? ""),
    "x-forwarded-port",
    appended(joined("x-forwarded-port"), headerPort ?? (encrypted ? "443" : "80")),
    "x-forwarded-proto",
    appended(joined("x-forwarded-proto"), encrypted ? "https" : "http"),
    "x-forwarded-host",
    joined("x-forwarded-host") || host || "",
  );
  return out;
}

/** The flat [name, value, ...] list the caller receives. */
export function returnedResponseHeaders(res: IncomingMessage): string[] {
  return keptRawHeaders(res, DROPPED_RESPONSE_HEADERS, "");
}

/** True when the request carries no body (nothing to pipe: the request can be sent at once). */
function bodiless(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] === undefined && (length === undefined || length === "0");
}

export function relayHttp(
  req: IncomingMessage,
  res: ServerResponse,
  target: RelayTarget,
  agent: http.Agent,
  options: RelayOptions,
): http.ClientRequest {
  const outgoing = http.request({
    agent,
    // The pool's agents dial the forward channel themselves; host and port name the app for them.
    host: "localhost",
    port: target.port,
    method: req.method ?? "GET",
    path: target.path,
    headers: forwardedRequestHeaders(req, target),
  });
  outgoing.setTimeout(options.idleTimeoutMs, () => outgoing.destroy());
  outgoing.on("error", (err) => {
    // The caller went away first: nothing to answer.
    if (res.destroyed && !res.headersSent) return;
    if (res.headersSent) res.destroy();
    else options.onError(err, outgoing);
  });
  outgoing.on("response", (upstream) => {
    upstream.on("error", () => res.destroy());
    upstream.on("aborted", () => res.destroy());
    res.writeHead(upstream.statusCode ?? 502, upstream.statusMessage, returnedResponseHeaders(upstream));
    upstream.pipe(res);
  });
  res.on("close", () => {
    if (!res.writableFinished) outgoing.destroy();
  });
  req.on("error", () => outgoing.destroy());
  if (bodiless(req)) {
    outgoing.end();
    req.resume();
  } else {
    req.pipe(outgoing);
  }
  return outgoing;
}
