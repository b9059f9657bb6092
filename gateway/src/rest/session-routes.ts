import { sessionJson } from "@bhatti/proto/rest-json";
import { arrayOf, idParam, json, onSandbox, op } from "../openapi/schemas.js";
import type { GatewayContext } from "../gateway-context.js";
import { sessionInfoMessage } from "../sandboxes/agent-messages.js";
import { requestSignal } from "./client-gone.js";
import { sendJson } from "./json-body.js";
import type { RestRouter } from "./router.js";
import { sandboxRef, userRoute } from "./user-route.js";

/** `GET /sandboxes/:id/sessions`: the agent's SessionInfo list (wakes the sandbox). */
export function registerSessionRoutes(router: RestRouter, gw: GatewayContext): void {
  const { agent } = gw.runtime;
  router.add(
    "GET",
    "/sandboxes/:id/sessions",
    userRoute(gw, "read", async (ctx, user) => {
      const sessions = await agent.listSessions(user, sandboxRef(ctx), requestSignal(ctx));
      sendJson(
        ctx.res,
        200,
        sessions.map((s) => sessionJson(sessionInfoMessage(s))),
      );
    }),
    {
      doc: op(
        "List TTY and piped sessions",
        { "200": json(arrayOf("SessionInfo"), "Sessions"), ...onSandbox },
        {
          parameters: [idParam],
        },
      ),
    },
  );
}
