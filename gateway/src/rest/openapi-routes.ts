import type { GatewayContext } from "../gateway-context.js";
import { openApiJson } from "../openapi/openapi-document.js";
import type { RestRouter } from "./router.js";

/** `GET /openapi.json`: the REST API's description, public like /health (it holds nothing private). */
export function registerOpenApiRoutes(router: RestRouter, _gw: GatewayContext): void {
  const text = openApiJson();
  router.add(
    "GET",
    "/openapi.json",
    ({ res }) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
      res.end(text);
    },
    { public: true },
  );
}
