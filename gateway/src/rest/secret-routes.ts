import { arrayOf, common, error, json, jsonBody, op, ref } from "../openapi/schemas.js";
import { secretJson } from "@bhatti/proto/rest-json";
import { Code, ConnectError } from "@connectrpc/connect";
import type { GatewayContext } from "../gateway-context.js";
import { readJsonObject, sendJson } from "./json-body.js";
import type { RestRouter } from "./router.js";
import { userRoute } from "./user-route.js";

/** `/secrets`: the caller's own secrets, through the store. */
export function registerSecretRoutes(router: RestRouter, gw: GatewayContext): void {
  const { store } = gw.clients;

  router.add(
    "GET",
    "/secrets",
    userRoute(gw, "read", async (ctx, user) => {
      const { secrets } = await store.listSecrets({ userId: user.id });
      sendJson(ctx.res, 200, secrets.map(secretJson));
    }),
    { doc: op("List secret names (never values)", { "200": json(arrayOf("Secret"), "Secrets"), ...common }) },
  );

  router.add(
    "POST",
    "/secrets",
    userRoute(gw, "read", async (ctx, user) => {
      const body = await readJsonObject(ctx.req);
      const name = body["name"];
      const value = body["value"];
      if (typeof name !== "string" || name === "" || typeof value !== "string" || value === "") {
        throw new ConnectError("name and value are required", Code.InvalidArgument);
      }
      const { secret, created } = await store.setSecret({ userId: user.id, name, value });
      if (secret === undefined) throw new ConnectError("store returned no secret", Code.Internal);
      sendJson(ctx.res, created ? 201 : 200, secretJson(secret));
    }),
    {
      doc: op(
        "Create or replace a secret",
        {
          "201": json(ref("Secret"), "Created"),
          "200": json(ref("Secret"), "Replaced"),
          "400": error("Empty name or value"),
          ...common,
        },
        {
          requestBody: jsonBody({
            type: "object",
            required: ["name", "value"],
            properties: { name: { type: "string" }, value: { type: "string" } },
          }),
        },
      ),
    },
  );

  router.add(
    "DELETE",
    "/secrets/:name",
    userRoute(gw, "read", async (ctx, user) => {
      await store.deleteSecret({ userId: user.id, name: ctx.params["name"] ?? "" });
      sendJson(ctx.res, 200, { status: "deleted" });
    }),
    {
      doc: op(
        "Delete a secret",
        { "200": json({ type: "object" }, "Deleted"), "404": error("No such secret"), ...common },
        {
          parameters: [{ name: "name", in: "path", required: true, schema: { type: "string" } }],
        },
      ),
    },
  );
}
