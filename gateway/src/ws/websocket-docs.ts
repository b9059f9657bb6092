import { idParam, onSandbox, op } from "../openapi/schemas.js";
import type { RestRouter } from "../rest/router.js";

/** The 101 every WebSocket endpoint answers with. */
const upgraded = { "101": { description: "Switching protocols" }, ...onSandbox };

/**
 * Records the two WebSocket endpoints served by ./websocket-routes.ts with the REST router, so that
 * router.list() and /openapi.json show them (as a GET answered with 101).
 */
export function registerWebSocketDocs(router: RestRouter): void {
  router.addWebSocket(
    "/sandboxes/:id/ws",
    op(
      "WebSocket TTY shell: first text frame {type:session}, binary output, {type:resize} text messages, close 1000 on exit",
      upgraded,
      {
        parameters: [
          idParam,
          { name: "session", in: "query", schema: { type: "string" } },
          { name: "new", in: "query", schema: { type: "boolean" } },
        ],
      },
    ),
  );
  router.addWebSocket(
    "/sandboxes/:id/exec/ws",
    op(
      "WebSocket piped session: first client message {cmd, env?, max_idle_sec?}; text output; {type:exit} then close 1000",
      upgraded,
      { parameters: [idParam, { name: "session", in: "query", schema: { type: "string" } }] },
    ),
  );
}
