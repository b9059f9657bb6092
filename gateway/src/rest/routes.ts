import type { GatewayContext } from "../gateway-context.js";
import { registerAdminRoutes } from "./admin-routes.js";
import { registerExecRoutes } from "./exec-routes.js";
import { registerForwardRoutes } from "./forward-routes.js";
import { registerFileRoutes } from "./file-routes.js";
import { registerHealthRoutes } from "./health-routes.js";
import { registerImageRoutes } from "./image-routes.js";
import { registerOpenApiRoutes } from "./openapi-routes.js";
import { registerPublishRoutes } from "./publish-routes.js";
import { registerSandboxRoutes } from "./sandbox-routes.js";
import { registerShareRoutes } from "./share-routes.js";
import { registerSecretRoutes } from "./secret-routes.js";
import { registerSessionRoutes } from "./session-routes.js";
import { registerSnapshotRoutes } from "./snapshot-routes.js";
import { registerVolumeRoutes } from "./volume-routes.js";
import { registerWebSocketDocs } from "../ws/websocket-docs.js";
import type { RestRouter } from "./router.js";

/** Every REST route, one registration per file (add yours here). */
export function registerRestRoutes(router: RestRouter, gw: GatewayContext): void {
  registerHealthRoutes(router, gw);
  registerSandboxRoutes(router, gw);
  registerExecRoutes(router, gw);
  registerFileRoutes(router, gw);
  registerSessionRoutes(router, gw);
  registerWebSocketDocs(router);
  registerSecretRoutes(router, gw);
  registerAdminRoutes(router, gw);
  registerImageRoutes(router, gw);
  registerSnapshotRoutes(router, gw);
  registerVolumeRoutes(router, gw);
  registerForwardRoutes(router, gw, gw.forwards);
  registerShareRoutes(router, gw);
  registerPublishRoutes(router, gw);
  registerOpenApiRoutes(router, gw);
}
