import type { GatewayContext } from "../gateway-context.js";
import { type RouteEntry, createRestRouter } from "../rest/router.js";
import { registerRestRoutes } from "../rest/routes.js";
import { openApiText } from "./openapi-document.js";

/**
 * Every route the gateway registers, collected without a running gateway (for docs/openapi.json).
 * Registration only closes over the context; no handler runs, so the context is left empty.
 */
export function documentedRoutes(): RouteEntry[] {
  const unused = { clients: {}, runtime: {} } as unknown as GatewayContext;
  const router = createRestRouter(unused);
  registerRestRoutes(router, unused);
  return router.list();
}

/** The document as the gateway serves it and as committed in docs/openapi.json. */
export function openApiJson(): string {
  return openApiText(documentedRoutes());
}
