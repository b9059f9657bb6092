import type { GatewayContext } from "../gateway-context.js";
import { registerHealthRoutes } from "./health-routes.js";
import type { RestRouter } from "./router.js";

/** Every REST route, one registration per file (add yours here). */
export function registerRestRoutes(router: RestRouter, gw: GatewayContext): void {
  registerHealthRoutes(router, gw);
}
