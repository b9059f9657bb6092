import { Code, ConnectError } from "@connectrpc/connect";
import type { ForwardInfo, ForwardManager } from "../forward/forward-manager.js";
import type { GatewayContext } from "../gateway-context.js";
import { error, idParam, json, jsonBody, onSandbox, op } from "../openapi/schemas.js";
import { readJsonObject, sendJson } from "./json-body.js";
import type { RestRouter } from "./router.js";
import { sandboxRef, userRoute } from "./user-route.js";

/** The REST shape of a forward (snake_case like every v1 body). */
export function forwardJson(f: ForwardInfo) {
  return {
    sandbox_id: f.sandboxId,
    port: f.port,
    host_port: f.hostPort,
    address: `${f.bindAddress.includes(":") ? `[${f.bindAddress}]` : f.bindAddress}:${f.hostPort}`,
    created_at: f.createdAt.toISOString(),
    connections: f.connections,
  };
}

const forwardSchema = {
  type: "object",
  properties: {
    sandbox_id: { type: "string" },
    port: { type: "integer", description: "Port inside the sandbox" },
    host_port: { type: "integer", description: "Port the gateway listens on" },
    address: { type: "string", description: "host:port to connect to on the server" },
    created_at: { type: "string", format: "date-time" },
    connections: { type: "integer", description: "Relays open now" },
  },
};

const portParam = { name: "port", in: "path", required: true, schema: { type: "integer" } };

/** An optional integer field of a JSON body (absent or null = undefined). */
function optionalNumber(body: Record<string, unknown>, name: string): number | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number") throw new ConnectError(`${name} must be an integer`, Code.InvalidArgument);
  return v;
}

/** `/sandboxes/:id/forward`: host ports relayed to ports inside the sandbox (v1 §4.5). */
export function registerForwardRoutes(
  router: RestRouter,
  gw: GatewayContext,
  forwards: ForwardManager,
): void {
  const { sandboxes } = gw.runtime;

  router.add(
    "POST",
    "/sandboxes/:id/forward",
    userRoute(gw, "read", async (ctx, user) => {
      const body = await readJsonObject(ctx.req);
      const sandboxId = await sandboxes.resolveId(user, sandboxRef(ctx));
      const port = optionalNumber(body, "port");
      if (port === undefined) throw new ConnectError("port is required", Code.InvalidArgument);
      const info = await forwards.open(user.id, sandboxId, port, optionalNumber(body, "host_port"));
      sendJson(ctx.res, 200, forwardJson(info));
    }),
    {
      doc: op(
        "Forward a host port to a port in the sandbox (listens on forward_bind_address; woken on connect)",
        {
          "200": json(forwardSchema, "The forward"),
          "400": error("Port out of range"),
          "409": error("Host port in use, or the port is already forwarded to another host port"),
          ...onSandbox,
        },
        {
          parameters: [idParam],
          requestBody: jsonBody({
            type: "object",
            required: ["port"],
            properties: {
              port: { type: "integer", minimum: 1, maximum: 65535 },
              host_port: {
                type: "integer",
                minimum: 0,
                maximum: 65535,
                description: "0 or absent: any free port",
              },
            },
          }),
        },
      ),
    },
  );

  router.add(
    "GET",
    "/sandboxes/:id/forward",
    userRoute(gw, "read", async (ctx, user) => {
      const sandboxId = await sandboxes.resolveId(user, sandboxRef(ctx));
      sendJson(ctx.res, 200, forwards.list(user.id, sandboxId).map(forwardJson));
    }),
    {
      doc: op(
        "List the sandbox's host forwards",
        { "200": json({ type: "array", items: forwardSchema }, "Forwards"), ...onSandbox },
        { parameters: [idParam] },
      ),
    },
  );

  router.add(
    "DELETE",
    "/sandboxes/:id/forward/:port",
    userRoute(gw, "read", async (ctx, user) => {
      const sandboxId = await sandboxes.resolveId(user, sandboxRef(ctx));
      const raw = ctx.params["port"] ?? "";
      if (!/^\d{1,5}$/.test(raw)) throw new ConnectError("port must be an integer", Code.InvalidArgument);
      const info = await forwards.close(user.id, sandboxId, Number(raw));
      sendJson(ctx.res, 200, forwardJson({ ...info, connections: 0 }));
    }),
    {
      doc: op(
        "Close a host forward and its open connections",
        { "200": json(forwardSchema, "The closed forward"), ...onSandbox },
        { parameters: [idParam, portParam] },
      ),
    },
  );
}
