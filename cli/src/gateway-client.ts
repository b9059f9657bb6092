import type { DescService } from "@bufbuild/protobuf";
import { type Client, type Interceptor, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { type ClientConfig, resolveClientConfig } from "./client-config.js";
import type { GlobalOptions } from "./global-options.js";

export interface GatewayClientOptions {
  /** Deadline of each call that does not pass its own `timeoutMs`. */
  defaultTimeoutMs?: number;
}

/**
 * A Connect client for one public service, over HTTP/1.1 to the gateway, with the Bearer key.
 * Import this module lazily (inside an action) so `bhatti version` stays fast.
 */
export function createGatewayClient<S extends DescService>(
  service: S,
  options: GlobalOptions,
  clientOptions: GatewayClientOptions = {},
): { client: Client<S>; config: ClientConfig } {
  const config = resolveClientConfig(options);
  const bearer: Interceptor = (next) => (req) => {
    if (config.token !== undefined) req.header.set("authorization", `Bearer ${config.token}`);
    return next(req);
  };
  const transport = createConnectTransport({
    httpVersion: "1.1",
    baseUrl: config.url,
    interceptors: [bearer],
    defaultTimeoutMs: clientOptions.defaultTimeoutMs ?? 60_000,
  });
  return { client: createClient(service, transport), config };
}
