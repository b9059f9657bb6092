import { SandboxService } from "@bhatti/proto/v1/sandbox_pb";
import type { ClientConfig } from "./client-config.js";
import type { GatewayClient } from "./connect-http.js";
import { createGatewayClient } from "./gateway-client.js";
import type { GlobalOptions } from "./global-options.js";

/** The public SandboxService client. Long operations (create, stop, start) get generous deadlines. */
export function sandboxClient(
  options: GlobalOptions,
  timeoutMs = 300_000,
): { client: GatewayClient<typeof SandboxService>; config: ClientConfig } {
  return createGatewayClient(SandboxService, options, { defaultTimeoutMs: timeoutMs });
}
