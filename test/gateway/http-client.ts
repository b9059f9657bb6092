import { request } from "node:http";

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json(): unknown;
}

/**
 * One HTTP request with the path sent exactly as given (fetch would resolve `..` itself, which
 * hides what the server does with `//health/../sandboxes`).
 */
export function http(
  base: string,
  method: string,
  path: string,
  options: { key?: string; body?: unknown; raw?: Buffer | string; headers?: Record<string, string> } = {},
): Promise<HttpResult> {
  const url = new URL(base);
  const headers: Record<string, string> = { ...options.headers };
  if (options.key !== undefined) headers["authorization"] = `Bearer ${options.key}`;
  let payload: Buffer | undefined;
  if (options.body !== undefined) {
    payload = Buffer.from(JSON.stringify(options.body));
    headers["content-type"] = "application/json";
  } else if (options.raw !== undefined) {
    payload = Buffer.from(options.raw);
  }
  if (payload !== undefined && headers["transfer-encoding"] === undefined) {
    headers["content-length"] = String(payload.byteLength);
  }
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
      });
    });
    req.on("error", reject);
    req.end(payload);
  });
}
