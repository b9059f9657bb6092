import { arrayOf, common, error, idParam, json, jsonBody, onSandbox, op, ref } from "../openapi/schemas.js";
import { sandboxJson } from "@bhatti/proto/rest-json";
import { Code, ConnectError } from "@connectrpc/connect";
import type { GatewayContext } from "../gateway-context.js";
import { checkSandboxName, createInputFromJson } from "../sandboxes/create-input.js";
import type { SandboxUpdate } from "../sandboxes/sandbox-manager.js";
import { sandboxMessage } from "../sandboxes/sandbox-view.js";
import { readJsonBody, readJsonObject, sendJson } from "./json-body.js";
import type { RestContext, RestRouter } from "./router.js";
import { sandboxRef, userRoute } from "./user-route.js";

/** `?label=k=v` (repeatable; all must match). */
function labelFilter(ctx: RestContext): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of ctx.url.searchParams.getAll("label")) {
    const eq = pair.indexOf("=");
    if (eq <= 0)
      throw new ConnectError(`label filter ${JSON.stringify(pair)} must be key=value`, Code.InvalidArgument);
    labels[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return labels;
}

function updateFromJson(raw: unknown): SandboxUpdate {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ConnectError("request body must be a JSON object", Code.InvalidArgument);
  }
  const body = raw as Record<string, unknown>;
  const update: SandboxUpdate = {};
  const keepHot = body["keep_hot"];
  if (keepHot !== undefined && keepHot !== null) {
    if (typeof keepHot !== "boolean")
      throw new ConnectError("keep_hot must be a boolean", Code.InvalidArgument);
    update.keepHot = keepHot;
  }
  const name = body["name"];
  if (name !== undefined && name !== null && name !== "") {
    if (typeof name !== "string") throw new ConnectError("name must be a string", Code.InvalidArgument);
    checkSandboxName(name);
    update.name = name;
  }
  const add = body["labels_add"] ?? body["labels"];
  if (add !== undefined && add !== null) {
    if (
      typeof add !== "object" ||
      Array.isArray(add) ||
      !Object.values(add).every((v) => typeof v === "string")
    ) {
      throw new ConnectError("labels_add must be an object of strings", Code.InvalidArgument);
    }
    update.labelsAdd = add as Record<string, string>;
  }
  const remove = body["labels_remove"];
  if (remove !== undefined && remove !== null) {
    if (!Array.isArray(remove) || !remove.every((v) => typeof v === "string")) {
      throw new ConnectError("labels_remove must be a list of keys", Code.InvalidArgument);
    }
    update.labelsRemove = remove;
  }
  return update;
}

/** Sandboxes CRUD, stop and start (v1 §5.2). */
export function registerSandboxRoutes(router: RestRouter, gw: GatewayContext): void {
  const { sandboxes, limiter } = gw.runtime;

  router.add(
    "GET",
    "/sandboxes",
    userRoute(gw, "read", async (ctx, user) => {
      const list = await sandboxes.list(user, labelFilter(ctx));
      sendJson(
        ctx.res,
        200,
        list.map((state) => sandboxJson(sandboxMessage(state))),
      );
    }),
    {
      doc: op(
        "List the caller's sandboxes (never wakes one)",
        { "200": json(arrayOf("Sandbox"), "Sandboxes"), ...common },
        {
          parameters: [
            {
              name: "label",
              in: "query",
              description: "key=value; repeatable, all must match",
              schema: { type: "array", items: { type: "string" } },
              style: "form",
              explode: true,
            },
          ],
        },
      ),
    },
  );

  router.add(
    "POST",
    "/sandboxes",
    userRoute(gw, "create", async (ctx, user) => {
      const input = createInputFromJson(await readJsonBody(ctx.req));
      const { state, existing } = await sandboxes.create(user, input);
      if (existing) ctx.res.setHeader("X-Bhatti-Existing", "true");
      sendJson(ctx.res, existing ? 200 : 201, sandboxJson(sandboxMessage(state)));
    }),
    {
      doc: op(
        "Create a sandbox (idempotent by name)",
        {
          "201": json(ref("Sandbox"), "Created"),
          "200": {
            ...json(ref("Sandbox"), "A sandbox with this name exists and is returned"),
            headers: { "X-Bhatti-Existing": { schema: { const: "true" } } },
          },
          "400": error("Invalid request, cpus/memory over the limit, or a missing secret"),
          "501": error("A v1 feature this server does not have (templates, persistent_volumes...)"),
          ...common,
        },
        { requestBody: jsonBody(ref("CreateSandbox"), false) },
      ),
    },
  );

  router.add(
    "GET",
    "/sandboxes/:id",
    userRoute(gw, "read", async (ctx, user) => {
      sendJson(ctx.res, 200, sandboxJson(sandboxMessage(await sandboxes.get(user, sandboxRef(ctx)))));
    }),
    {
      doc: op(
        "Get a sandbox (never wakes it)",
        { "200": json(ref("Sandbox"), "Sandbox"), ...onSandbox },
        {
          parameters: [idParam],
        },
      ),
    },
  );

  router.add(
    "PATCH",
    "/sandboxes/:id",
    userRoute(gw, "read", async (ctx, user) => {
      const update = updateFromJson(await readJsonBody(ctx.req));
      // keep_hot wakes or releases a sandbox: a lifecycle operation, unlike a rename or labels.
      if (update.keepHot !== undefined) limiter.take(user.record, "lifecycle");
      sendJson(
        ctx.res,
        200,
        sandboxJson(sandboxMessage(await sandboxes.update(user, sandboxRef(ctx), update))),
      );
    }),
    {
      doc: op(
        "Update keep_hot, name or labels (keep_hot=true wakes it)",
        { "200": json(ref("Sandbox"), "Sandbox"), "409": error("Name in use"), ...onSandbox },
        { parameters: [idParam], requestBody: jsonBody(ref("UpdateSandbox")) },
      ),
    },
  );

  router.add(
    "DELETE",
    "/sandboxes/:id",
    userRoute(gw, "lifecycle", async (ctx, user) => {
      await sandboxes.destroy(user, sandboxRef(ctx));
      sendJson(ctx.res, 200, { status: "destroyed" });
    }),
    {
      doc: op(
        "Destroy a sandbox and delete its row",
        {
          "200": json({ type: "object", properties: { status: { const: "destroyed" } } }, "Destroyed"),
          ...onSandbox,
        },
        { parameters: [idParam] },
      ),
    },
  );

  router.add(
    "POST",
    "/sandboxes/:id/stop",
    userRoute(gw, "lifecycle", async (ctx, user) => {
      sendJson(ctx.res, 200, sandboxJson(sandboxMessage(await sandboxes.stop(user, sandboxRef(ctx)))));
    }),
    {
      doc: op(
        "Cold-snapshot a sandbox",
        { "200": json(ref("Sandbox"), "Stopped"), ...onSandbox },
        {
          parameters: [idParam],
        },
      ),
    },
  );

  router.add(
    "POST",
    "/sandboxes/:id/start",
    userRoute(gw, "lifecycle", async (ctx, user) => {
      const force = (await readJsonObject(ctx.req))["force"] === true;
      sendJson(
        ctx.res,
        200,
        sandboxJson(sandboxMessage(await sandboxes.start(user, sandboxRef(ctx), force))),
      );
    }),
    {
      doc: op(
        "Restore a stopped sandbox (force clears the circuit breaker)",
        { "200": json(ref("Sandbox"), "Started"), "409": error("Circuit breaker open"), ...onSandbox },
        {
          parameters: [idParam],
          requestBody: jsonBody({ type: "object", properties: { force: { type: "boolean" } } }, false),
        },
      ),
    },
  );
}
