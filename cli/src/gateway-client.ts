import type { DescService } from "@bufbuild/protobuf";
import { type ClientConfig, resolveClientConfig } from "./client-config.js";
import { type GatewayClient, createConnectHttpClient } from "./connect-http.js";
import type { GlobalOptions } from "./global-options.js";

export interface GatewayClientOptions {
  /** Deadline of each call that does not pass its own `timeoutMs`. */
  defaultTimeoutMs?: number;
}

/**
 * A Connect client for one public service, over HTTP/1.1 to the gateway, with the Bearer key.
 * Import this module lazily (inside an action) so `bhatti version` stays fast, and pass the one
 * service's descriptor from its own generated file (`@bhatti/proto/v1/<file>`): importing the
 * whole of `@bhatti/proto` builds the descriptors of every service.
 */
export function createGatewayClient<S extends DescService>(
  service: S,
  options: GlobalOptions,
  clientOptions: GatewayClientOptions = {},
): { client: GatewayClient<S>; config: ClientConfig } {
  const config = resolveClientConfig(options);
  const client = createConnectHttpClient(service, {
    baseUrl: config.url,
    headers: config.token !== undefined ? { authorization: `Bearer ${config.token}` } : {},
    defaultTimeoutMs: clientOptions.defaultTimeoutMs ?? 60_000,
  });
  return { client, config };
}
