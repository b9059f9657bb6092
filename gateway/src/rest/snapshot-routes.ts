import { common, error, idParam, json, jsonBody, onSandbox, op, ref } from "../openapi/schemas.js";
import { type SnapshotJson, sandboxJson, snapshotJson } from "@bhatti/proto/rest-json";
import { Code, ConnectError } from "@connectrpc/connect";
import type { GatewayContext } from "../gateway-context.js";
import { sandboxMessage } from "../sandboxes/sandbox-view.js";
import { readJsonObject, sendJson } from "./json-body.js";
import type { RestRouter } from "./router.js";
import { sandboxRef, userRoute } from "./user-route.js";

/** The SnapshotRecord JSON (proto/src/rest-json.ts `snapshotJson`). */
const snapshotSchema = {
  type: "object",
  required: ["id", "name", "source_sandbox", "type", "size_mb", "created_at"],
  properties: {
    id: { type: "string" },
    name: { type: "string" },
    source_sandbox: { type: "string", description: "Id of the sandbox it was taken of." },
    type: { type: "string", enum: ["memory", "filesystem"] },
    size_mb: { type: "integer" },
    created_at: { type: "string", format: "date-time" },
  } satisfies Record<keyof SnapshotJson, unknown>,
};
const snapshotParam = {
  name: "name",
  in: "path",
  required: true,
  description: "Snapshot name or id (scoped to the caller).",
  schema: { type: "string" },
};

function optionalString(body: Record<string, unknown>, key: string): string | undefined {
  const v = body[key];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") throw new ConnectError(`${key} must be a string`, Code.InvalidArgument);
  return v;
}

/** Named snapshots (v1 §5.2, §5.7): checkpoint a sandbox, list, delete, resume as a fork or a rewind. */
export function registerSnapshotRoutes(router: RestRouter, gw: GatewayContext): void {
  const { snapshots } = gw.runtime;

  router.add(
    "POST",
    "/sandboxes/:id/checkpoint",
    userRoute(gw, "lifecycle", async (ctx, user) => {
      const body = await readJsonObject(ctx.req);
      const name = optionalString(body, "name");
      if (name === undefined) throw new ConnectError("name is required", Code.InvalidArgument);
      const type = optionalString(body, "type") ?? "memory";
      if (type !== "memory" && type !== "filesystem") {
        throw new ConnectError('type must be "memory" or "filesystem"', Code.InvalidArgument);
      }
      const { snapshot } = await snapshots.create(user, sandboxRef(ctx), name, type === "filesystem");
      sendJson(ctx.res, 201, snapshotJson(snapshot));
    }),
    {
      doc: op(
        "Take a named snapshot (memory, processes and disk; type filesystem: disk only). The sandbox pauses for the save and keeps running",
        {
          "201": json(snapshotSchema, "Created"),
          "400": error("Invalid name or type"),
          "409": error("A snapshot of that name exists"),
          ...onSandbox,
        },
        {
          parameters: [idParam],
          requestBody: jsonBody({
            type: "object",
            required: ["name"],
            properties: {
              name: { type: "string" },
              type: { type: "string", enum: ["memory", "filesystem"], default: "memory" },
            },
          }),
        },
      ),
    },
  );

  router.add(
    "GET",
    "/snapshots",
    userRoute(gw, "read", async (ctx, user) => {
      sendJson(ctx.res, 200, (await snapshots.list(user)).map(snapshotJson));
    }),
    {
      doc: op("List the caller's snapshots", {
        "200": json({ type: "array", items: snapshotSchema }, "Snapshots"),
        ...common,
      }),
    },
  );

  router.add(
    "GET",
    "/snapshots/:name",
    userRoute(gw, "read", async (ctx, user) => {
      sendJson(ctx.res, 200, snapshotJson(await snapshots.get(user, ctx.params["name"] ?? "")));
    }),
    {
      doc: op(
        "Get one snapshot",
        { "200": json(snapshotSchema, "Snapshot"), "404": error("No such snapshot"), ...common },
        { parameters: [snapshotParam] },
      ),
    },
  );

  router.add(
    "DELETE",
    "/snapshots/:name",
    userRoute(gw, "lifecycle", async (ctx, user) => {
      sendJson(ctx.res, 200, snapshotJson(await snapshots.delete(user, ctx.params["name"] ?? "")));
    }),
    {
      doc: op(
        "Delete a snapshot and its files",
        { "200": json(snapshotSchema, "Deleted"), "404": error("No such snapshot"), ...common },
        { parameters: [snapshotParam] },
      ),
    },
  );

  router.add(
    "POST",
    "/snapshots/:name/resume",
    userRoute(gw, "create", async (ctx, user) => {
      const body = await readJsonObject(ctx.req);
      const name = optionalString(body, "name");
      const into = optionalString(body, "into");
      const state = await snapshots.resume(user, ctx.params["name"] ?? "", {
        ...(name !== undefined ? { name } : {}),
        ...(into !== undefined ? { into } : {}),
      });
      sendJson(ctx.res, into === undefined ? 201 : 200, sandboxJson(sandboxMessage(state)));
    }),
    {
      doc: op(
        "Resume a snapshot into a new sandbox (a fork: new id, name and address; same memory and processes), or with `into` rewind an existing sandbox to it",
        {
          "201": json(ref("Sandbox"), "The new sandbox"),
          "200": json(ref("Sandbox"), "The rewound sandbox"),
          "400": error("Invalid name, or name with into"),
          "404": error("No such snapshot or sandbox"),
          "409": error(
            "Name taken, a volume the snapshot was taken with is missing (named), or the sandbox cannot take this snapshot",
          ),
          ...common,
        },
        {
          parameters: [snapshotParam],
          requestBody: jsonBody(
            {
              type: "object",
              properties: {
                name: { type: "string", description: "The new sandbox's name; default <snapshot>-<6hex>." },
                into: { type: "string", description: "Sandbox id or name to rewind instead." },
              },
            },
            false,
          ),
        },
      ),
    },
  );
}
