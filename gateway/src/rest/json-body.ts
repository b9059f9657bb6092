import type { IncomingMessage, ServerResponse } from "node:http";
import { Code, ConnectError } from "@connectrpc/connect";

/** JSON request bodies are capped at 1 MiB, as in v1. */
export const MAX_JSON_BODY_BYTES = 1 << 20;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

/**
 * Reads and parses a JSON body; an empty body is `{}`. Bad JSON or an oversize body is
 * InvalidArgument. Past the cap, reading stops without destroying the request, so that the
 * router can still answer and drain a bounded rest (destroying it would reset the connection
 * before the client reads the 400).
 */
export async function readJsonBody(req: IncomingMessage, limit = MAX_JSON_BODY_BYTES): Promise<unknown> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > limit)
    throw new ConnectError(`request body larger than ${limit} bytes`, Code.InvalidArgument);
  const body = await new Promise<Buffer>((resolve, reject) => {
    // Nothing left to wait for: an ended body was empty (or already read), a destroyed one is gone.
    if (req.readableEnded) {
      resolve(Buffer.alloc(0));
      return;
    }
    if (req.destroyed) {
      reject(new ConnectError("request body not received: connection closed", Code.Canceled));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (result: Buffer | Error) => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.pause();
        done(new ConnectError(`request body larger than ${limit} bytes`, Code.InvalidArgument));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => done(Buffer.concat(chunks));
    const onError = (e: Error) =>
      done(new ConnectError(`request body not received: ${e.message}`, Code.Canceled));
    const onClose = () => {
      if (!req.complete)
        done(new ConnectError("request body not received: connection closed", Code.Canceled));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
  if (body.length === 0) return {};
  try {
    return JSON.parse(body.toString("utf8")) as unknown;
  } catch {
    throw new ConnectError("request body is not valid JSON", Code.InvalidArgument);
  }
}

/** Reads a JSON body that must be an object (`null`, arrays and scalars are InvalidArgument). */
export async function readJsonObject(req: IncomingMessage): Promise<Record<string, unknown>> {
  const body = await readJsonBody(req);
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw new ConnectError("request body must be a JSON object", Code.InvalidArgument);
  return body as Record<string, unknown>;
}
