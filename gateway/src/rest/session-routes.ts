import type { GatewayContext } from "../gateway-context.js";
import { translatingAgentErrors } from "../sandboxes/agent-errors.js";
import { requestSignal } from "./client-gone.js";
import { sendJson } from "./json-body.js";
import type { RestRouter } from "./router.js";
import { sandboxRef, userRoute } from "./user-route.js";

/** `GET /sandboxes/:id/sessions`: the agent's SessionInfo list (wakes the sandbox). */
export function registerSessionRoutes(router: RestRouter, gw: GatewayContext): void {
  const { sandboxes, wake } = gw.runtime;
  router.add(
    "GET",
    "/sandboxes/:id/sessions",
    userRoute(gw, "read", async (ctx, user) => {
      const id = await sandboxes.resolveId(user, sandboxRef(ctx));
      const signal = requestSignal(ctx);
      const sessions = await translatingAgentErrors(() =>
        wake.withAgent(id, (a) => a.listSessions({ signal }), { signal }),
      );
      sendJson(ctx.res, 200, sessions);
    }),
  );
}
