import type { ConnectRouter } from "@connectrpc/connect";
import type { GatewayContext } from "../gateway-context.js";
import { registerAdminService } from "./admin-service.js";
import { registerPublishService } from "./publish-service.js";
import { registerImageService } from "./image-service.js";
import { registerSandboxService } from "./sandbox-service.js";
import { registerSecretService } from "./secret-service.js";
import { registerSnapshotService } from "./snapshot-service.js";
import { registerShareServices } from "./share-service.js";
import { registerUserService } from "./user-service.js";
import { registerVolumeService } from "./volume-service.js";

/** Every public Connect service, one registration per file (add yours here). */
export function registerConnectServices(router: ConnectRouter, gw: GatewayContext): void {
  registerAdminService(router, gw);
  registerSandboxService(router, gw);
  registerUserService(router, gw);
  registerSecretService(router, gw);
  registerSnapshotService(router, gw);
  registerVolumeService(router, gw);
  registerShareServices(router, gw);
  registerPublishService(router, gw);
  registerImageService(router, gw);
}
