import { type Agent, request } from "node:http";

/** One REST answer, body read whole. */
export interface RestResponse {
  readonly status: number;
  readonly body: Buffer;
}

export interface RestClientOptions {
  /**
   * The gateway's endpoint as the harness's dialer gives it: the relay's Unix socket into the
   * product's netns, or plain TCP when the bench runs inside that netns (runInsideHostNetns).
   */
  readonly endpoint: { path: string } | { host: string; port: number };
  readonly agent: Agent;
  /** API key sent as `Authorization: Bearer`. */
  readonly key: string;
  /** Content-Type of every request that has a body (none when unset). */
  readonly contentType?: string;
}

/** REST calls the benches time: keep-alive through `agent`, the key on every request. */
export function createRestCall(options: RestClientOptions) {
  return (method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}) =>
    new Promise<RestResponse>((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(body);
      const req = request(
        {
          ...("path" in options.endpoint
            ? { socketPath: options.endpoint.path }
            : { host: options.endpoint.host, port: options.endpoint.port }),
          agent: options.agent,
          method,
          path,
          headers: {
            authorization: `Bearer ${options.key}`,
            ...(payload !== undefined ? { "content-length": String(payload.byteLength) } : {}),
            ...(payload !== undefined && options.contentType !== undefined
              ? { "content-type": options.contentType }
              : {}),
            ...headers,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (d: Buffer) => chunks.push(d));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        },
      );
      req.on("error", reject);
      req.end(payload);
    });
}

/** Every timed call must have succeeded: a fast 4xx (a rate limit, say) would flatter the figures. */
export async function expectStatus(p: Promise<RestResponse>, want = 200): Promise<RestResponse> {
  const r = await p;
  if (r.status !== want) throw new Error(`unexpected HTTP ${r.status}: ${r.body.toString().slice(0, 300)}`);
  return r;
}
