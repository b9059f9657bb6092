import type { ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { AgentConnectionError, AgentError } from "@bhatti/agent-client";
import { BHATTI_VERSION } from "@bhatti/runtime";
import { ConnectError } from "@connectrpc/connect";
import { httpStatusOf } from "../http-status.js";
import { retryAfterOf } from "../limits/rate-limiter.js";

const statusText: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  404: "Not Found",
  413: "Payload Too Large",
  429: "Too Many Requests",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

export interface ProxyErrorReply {
  status: number;
  body: { error: string; request_id?: string };
  headers: Record<string, string>;
}

/**
 * What a failed proxied request answers. Errors of the proxy itself (wake, limits, unknown
 * alias) keep their status; an app that does not answer is a 502 that says so. Nothing
 * internal leaks: an unexpected error is a 502 with a generic text.
 */
export function proxyErrorReply(e: unknown, port: number): ProxyErrorReply {
  if (e instanceof ConnectError) {
    const retryAfter = retryAfterOf(e);
    return {
      status: httpStatusOf(e.code) === 500 ? 502 : httpStatusOf(e.code),
      body: { error: httpStatusOf(e.code) === 500 ? "bad gateway" : e.rawMessage },
      headers: retryAfter !== undefined ? { "Retry-After": String(retryAfter) } : {},
    };
  }
  if (e instanceof AgentError) {
    return {
      status: 502,
      body: { error: `bad gateway: nothing answered on port ${port} in the sandbox (${e.agentMessage})` },
      headers: {},
    };
  }
  if (e instanceof AgentConnectionError)
    return { status: 502, body: { error: "bad gateway: the sandbox agent is unreachable" }, headers: {} };
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  const why =
    code === "ECONNRESET" || code === "EPIPE"
      ? "the app closed the connection"
      : code === "ECONNABORTED" || code === "ETIMEDOUT"
        ? "the app did not answer in time"
        : "the app's response was cut short";
  return { status: 502, body: { error: `bad gateway: ${why}` }, headers: {} };
}

export function sendReply(res: ServerResponse, reply: ProxyErrorReply): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    ...reply.headers,
    "Content-Type": "application/json",
    "Content-Length": String(Buffer.byteLength(text)),
    "X-Bhatti-Version": BHATTI_VERSION,
  });
  res.end(text);
}

/** The same reply on an upgrade request's raw socket. */
export function writeSocketReply(socket: Duplex, reply: ProxyErrorReply): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const text = JSON.stringify(reply.body);
  const headers = {
    ...reply.headers,
    "Content-Type": "application/json",
    "Content-Length": String(Buffer.byteLength(text)),
    "X-Bhatti-Version": BHATTI_VERSION,
    Connection: "close",
  };
  socket.end(
    `HTTP/1.1 ${reply.status} ${statusText[reply.status] ?? "Error"}\r\n${Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}`)
      .join("\r\n")}\r\n\r\n${text}`,
  );
}

export const plainReply = (status: number, error: string, headers: Record<string, string> = {}) => ({
  status,
  body: { error },
  headers,
});
