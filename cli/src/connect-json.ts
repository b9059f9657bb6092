import { resolveClientConfig } from "./client-config.js";
import { type CallOptions, createConnectTransport } from "./connect-transport.js";
import type { GlobalOptions } from "./global-options.js";

/**
 * Calls to the gateway in Connect's JSON encoding (proto3 JSON names), for the commands that run
 * most (`list`, `exec`): they need no protobuf descriptors, whose building was the largest part of
 * those commands' start-up. Everything else uses the typed client (gateway-client.ts).
 */
export interface JsonServiceClient {
  unary(method: string, request: unknown, call?: CallOptions): Promise<unknown>;
  serverStream(method: string, request: unknown, call?: CallOptions): AsyncGenerator<unknown>;
}

export function jsonServiceClient(
  typeName: string,
  options: GlobalOptions,
  defaultTimeoutMs: number,
): JsonServiceClient {
  const config = resolveClientConfig(options);
  const transport = createConnectTransport({
    baseUrl: config.url,
    headers: config.token !== undefined ? { authorization: `Bearer ${config.token}` } : {},
    defaultTimeoutMs,
  });
  const encode = (v: unknown) => Buffer.from(JSON.stringify(v));
  const decode = (b: Buffer): unknown => JSON.parse(b.toString("utf8") || "{}");
  return {
    async unary(method, request, call) {
      return decode(await transport.unary(`${typeName}/${method}`, "json", encode(request), call));
    },
    async *serverStream(method, request, call) {
      for await (const data of transport.serverStream(
        `${typeName}/${method}`,
        "json",
        encode(request),
        call,
      )) {
        yield decode(data);
      }
    },
  };
}
