import { formatDuration } from "@bhatti/runtime";
import type { GatewayContext } from "../gateway-context.js";
import { sendJson } from "./json-body.js";
import type { RestRouter } from "./router.js";

const startedAt = Date.now();

/** `GET /health`: the only unauthenticated REST route, same body as v1. */
export function registerHealthRoutes(router: RestRouter, _gw: GatewayContext): void {
  router.add(
    "GET",
    "/health",
    ({ res }) => sendJson(res, 200, { status: "ok", uptime: formatDuration(Date.now() - startedAt) }),
    { public: true },
  );
}
