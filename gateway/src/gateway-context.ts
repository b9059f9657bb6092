import type { Logger, ServerConfig } from "@bhatti/runtime";
import type { ForwardManager } from "./forward/forward-manager.js";
import type { ShareManager } from "./share/share-manager.js";
import type { RequestAuth } from "./auth/request-auth.js";
import type { SandboxRuntime } from "./sandbox-runtime.js";
import type { ServiceClients } from "./service-clients.js";

/** What every Connect service and REST route of the gateway is built from. */
export interface GatewayContext {
  readonly config: ServerConfig;
  readonly logger: Logger;
  readonly clients: ServiceClients;
  readonly auth: RequestAuth;
  /** Sandbox operations, wake control and rate limits, shared by every surface. */
  readonly runtime: SandboxRuntime;
  /** Connect procedures (`package.Service/Method`) callable without an API key. */
  readonly publicProcedures: Set<string>;
  /** Host forwards of this gateway process (in memory). */
  readonly forwards: ForwardManager;
  /** Share links (web terminal pages). */
  readonly shares: ShareManager;
}
