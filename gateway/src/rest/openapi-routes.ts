import type { GatewayContext } from "../gateway-context.js";
import { openApiText } from "../openapi/openapi-document.js";
import { json, op } from "../openapi/schemas.js";
import type { RestRouter } from "./router.js";

/**
 * `GET /openapi.json`: the REST API's description, public like /health (it holds nothing private).
 * Built from this router's routes on the first request, when every route is registered.
 */
export function registerOpenApiRoutes(router: RestRouter, _gw: GatewayContext): void {
  let text: string | undefined;
  router.add(
    "GET",
    "/openapi.json",
    ({ res }) => {
      text ??= openApiText(router.list());
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
      res.end(text);
    },
    { public: true, doc: op("This document (no auth)", { "200": json({ type: "object" }, "OpenAPI 3.1") }) },
  );
}
