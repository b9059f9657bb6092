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

/** Reads and parses a JSON body; an empty body is `{}`. Bad JSON or an oversize body is InvalidArgument. */
export async function readJsonBody(req: IncomingMessage, limit = MAX_JSON_BODY_BYTES): Promise<unknown> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > limit)
    throw new ConnectError(`request body larger than ${limit} bytes`, Code.InvalidArgument);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > limit) throw new ConnectError(`request body larger than ${limit} bytes`, Code.InvalidArgument);
    chunks.push(buf);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
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
