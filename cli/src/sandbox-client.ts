import { SandboxService } from "@bhatti/proto";
import type { Client } from "@connectrpc/connect";
import type { ClientConfig } from "./client-config.js";
import { createGatewayClient } from "./gateway-client.js";
import type { GlobalOptions } from "./global-options.js";

/** The public SandboxService client. Long operations (create, stop, start) get generous deadlines. */
export function sandboxClient(
  options: GlobalOptions,
  timeoutMs = 300_000,
): { client: Client<typeof SandboxService>; config: ClientConfig } {
  return createGatewayClient(SandboxService, options, { defaultTimeoutMs: timeoutMs });
}
