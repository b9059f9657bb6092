import { volumeJson } from "@bhatti/proto/rest-json";
import { Code, ConnectError } from "@connectrpc/connect";
import type { GatewayContext } from "../gateway-context.js";
import { type Schema, common, error, json, jsonBody, op } from "../openapi/schemas.js";
import { readJsonObject, sendJson } from "./json-body.js";
import type { RestRouter } from "./router.js";
import { userRoute } from "./user-route.js";

const volumeSchema: Schema = {
  type: "object",
  properties: {
    id: { type: "string" },
    name: { type: "string" },
    size_mb: { type: "integer" },
    status: { type: "string", enum: ["creating", "ready"] },
    created_at: { type: "string" },
    attachments: {
      type: "array",
      items: {
        type: "object",
        properties: {
          sandbox_id: { type: "string" },
          mount: { type: "string" },
          read_only: { type: "boolean" },
          attached_at: { type: "string" },
        },
      },
    },
  },
};
const nameParam = { name: "name", in: "path", required: true, schema: { type: "string" } };

function sizeOf(body: Record<string, unknown>): number {
  const size = body["size_mb"];
  if (typeof size !== "number" || !Number.isInteger(size) || size <= 0) {
    throw new ConnectError("size_mb must be a positive integer (MiB)", Code.InvalidArgument);
  }
  return size;
}

/** `/volumes`: the caller's volumes (v1 §5: quota 429, duplicate 409, attached 409). */
export function registerVolumeRoutes(router: RestRouter, gw: GatewayContext): void {
  const { volumes } = gw.runtime;

  router.add(
    "GET",
    "/volumes",
    userRoute(gw, "read", async (ctx, user) => {
      sendJson(ctx.res, 200, (await volumes.list(user.id)).map(volumeJson));
    }),
    {
      doc: op("List volumes", { "200": json({ type: "array", items: volumeSchema }, "Volumes"), ...common }),
    },
  );

  router.add(
    "POST",
    "/volumes",
    userRoute(gw, "lifecycle", async (ctx, user) => {
      const body = await readJsonObject(ctx.req);
      const name = body["name"];
      if (typeof name !== "string" || name === "")
        throw new ConnectError("name is required", Code.InvalidArgument);
      sendJson(ctx.res, 201, volumeJson(await volumes.create(user.id, name, sizeOf(body))));
    }),
    {
      doc: op(
        "Create a volume (a sparse ext4 image; its size is the quota)",
        {
          "201": json(volumeSchema, "Created"),
          "400": error("Bad name or size"),
          "409": error("Name taken"),
          "429": error("max_volume_storage_mb reached"),
          ...common,
        },
        {
          requestBody: jsonBody({
            type: "object",
            required: ["name", "size_mb"],
            properties: { name: { type: "string" }, size_mb: { type: "integer" } },
          }),
        },
      ),
    },
  );

  router.add(
    "GET",
    "/volumes/:name",
    userRoute(gw, "read", async (ctx, user) => {
      sendJson(ctx.res, 200, volumeJson(await volumes.get(user.id, ctx.params["name"] ?? "")));
    }),
    {
      doc: op(
        "Get a volume",
        { "200": json(volumeSchema, "Volume"), "404": error("No such volume"), ...common },
        { parameters: [nameParam] },
      ),
    },
  );

  router.add(
    "POST",
    "/volumes/:name/resize",
    userRoute(gw, "lifecycle", async (ctx, user) => {
      const body = await readJsonObject(ctx.req);
      sendJson(
        ctx.res,
        200,
        volumeJson(await volumes.resize(user.id, ctx.params["name"] ?? "", sizeOf(body))),
      );
    }),
    {
      doc: op(
        "Grow a detached volume",
        {
          "200": json(volumeSchema, "Resized"),
          "400": error("Smaller than now, or too large"),
          "404": error("No such volume"),
          "409": error("Attached to sandboxes (named in the message)"),
          "429": error("max_volume_storage_mb reached"),
          ...common,
        },
        {
          parameters: [nameParam],
          requestBody: jsonBody({
            type: "object",
            required: ["size_mb"],
            properties: { size_mb: { type: "integer" } },
          }),
        },
      ),
    },
  );

  router.add(
    "DELETE",
    "/volumes/:name",
    userRoute(gw, "lifecycle", async (ctx, user) => {
      await volumes.delete(user.id, ctx.params["name"] ?? "");
      sendJson(ctx.res, 200, { status: "deleted" });
    }),
    {
      doc: op(
        "Delete a detached volume and its data",
        {
          "200": json({ type: "object" }, "Deleted"),
          "404": error("No such volume"),
          "409": error("Attached to sandboxes (named in the message)"),
          ...common,
        },
        { parameters: [nameParam] },
      ),
    },
  );
}
