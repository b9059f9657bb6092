import { publishedPortJson } from "@bhatti/proto/rest-json";
import { Code, ConnectError } from "@connectrpc/connect";
import type { GatewayContext } from "../gateway-context.js";
import { type Schema, error, idParam, json, jsonBody, onSandbox, op } from "../openapi/schemas.js";
import { proxyRuntimeOf } from "../proxy/proxy-runtime.js";
import { readJsonObject, sendJson } from "./json-body.js";
import type { RestRouter } from "./router.js";
import { sandboxRef, userRoute } from "./user-route.js";

const publishedPortSchema: Schema = {
  type: "object",
  required: ["id", "sandbox_id", "port", "alias", "url", "private", "created_at"],
  properties: {
    id: { type: "string" },
    sandbox_id: { type: "string" },
    port: { type: "integer" },
    alias: { type: "string" },
    url: { type: "string", description: "Preview URL (domain or path mode, per proxy_mode)." },
    private: { type: "boolean", description: "Requests need the owner's API key." },
    created_at: { type: "string", format: "date-time" },
  },
};

const portParam = { name: "port", in: "path", required: true, schema: { type: "integer" } };

/** `/sandboxes/:id/publish`: published ports (preview URLs) of the caller's sandbox. */
export function registerPublishRoutes(router: RestRouter, gw: GatewayContext): void {
  const ops = () => proxyRuntimeOf(gw).publish;

  router.add(
    "POST",
    "/sandboxes/:id/publish",
    userRoute(gw, "lifecycle", async (ctx, user) => {
      const body = await readJsonObject(ctx.req);
      const port = body["port"];
      if (typeof port !== "number") throw new ConnectError("port must be a number", Code.InvalidArgument);
      const alias = body["alias"];
      const isPrivate = body["private"];
      if (alias !== undefined && alias !== null && typeof alias !== "string")
        throw new ConnectError("alias must be a string", Code.InvalidArgument);
      if (isPrivate !== undefined && isPrivate !== null && typeof isPrivate !== "boolean")
        throw new ConnectError("private must be a boolean", Code.InvalidArgument);
      const published = await ops().publish(user, sandboxRef(ctx), {
        port,
        ...(typeof alias === "string" ? { alias } : {}),
        private: isPrivate === true,
      });
      sendJson(ctx.res, 201, publishedPortJson(published));
    }),
    {
      doc: op(
        "Publish a sandbox port under a preview URL",
        {
          "201": json(publishedPortSchema, "Published"),
          "400": error("Bad port (1..65535, not the agent's 1024/1025) or alias (pattern, reserved)"),
          "409": error("Alias taken, or the port is already published"),
          ...onSandbox,
        },
        {
          parameters: [idParam],
          requestBody: jsonBody({
            type: "object",
            required: ["port"],
            properties: {
              port: { type: "integer", minimum: 1, maximum: 65535 },
              alias: { type: "string", pattern: "^[a-z0-9][a-z0-9-]{0,62}$" },
              private: { type: "boolean" },
            },
          }),
        },
      ),
    },
  );

  router.add(
    "GET",
    "/sandboxes/:id/publish",
    userRoute(gw, "read", async (ctx, user) => {
      const list = await ops().list(user, sandboxRef(ctx));
      sendJson(ctx.res, 200, list.map(publishedPortJson));
    }),
    {
      doc: op(
        "List a sandbox's published ports",
        { "200": json({ type: "array", items: publishedPortSchema }, "Published ports"), ...onSandbox },
        { parameters: [idParam] },
      ),
    },
  );

  router.add(
    "DELETE",
    "/sandboxes/:id/publish/:port",
    userRoute(gw, "lifecycle", async (ctx, user) => {
      await ops().unpublish(user, sandboxRef(ctx), ctx.params["port"] ?? "");
      ctx.res.writeHead(204);
      ctx.res.end();
    }),
    {
      doc: op(
        "Unpublish a port (its URL answers 404 at once)",
        { "204": { description: "Unpublished" }, "400": error("Bad port"), ...onSandbox },
        { parameters: [idParam, portParam] },
      ),
    },
  );
}
