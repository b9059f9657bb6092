import { formatDuration } from "@bhatti/runtime";
import type { GatewayContext } from "../gateway-context.js";
import { json, op } from "../openapi/schemas.js";
import { sendJson } from "./json-body.js";
import type { RestRouter } from "./router.js";

const startedAt = Date.now();

const healthSchema = { type: "object", properties: { status: { const: "ok" }, uptime: { type: "string" } } };

/** `GET /health`: the only unauthenticated REST route, same body as v1. */
export function registerHealthRoutes(router: RestRouter, _gw: GatewayContext): void {
  router.add(
    "GET",
    "/health",
    ({ res }) => sendJson(res, 200, { status: "ok", uptime: formatDuration(Date.now() - startedAt) }),
    { public: true, doc: op("Liveness (no auth)", { "200": json(healthSchema, "Healthy") }) },
  );
}
