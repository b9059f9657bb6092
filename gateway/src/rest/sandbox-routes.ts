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
  );

  router.add(
    "GET",
    "/sandboxes/:id",
    userRoute(gw, "read", async (ctx, user) => {
      sendJson(ctx.res, 200, sandboxJson(sandboxMessage(await sandboxes.get(user, sandboxRef(ctx)))));
    }),
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
  );

  router.add(
    "DELETE",
    "/sandboxes/:id",
    userRoute(gw, "lifecycle", async (ctx, user) => {
      await sandboxes.destroy(user, sandboxRef(ctx));
      sendJson(ctx.res, 200, { status: "destroyed" });
    }),
  );

  router.add(
    "POST",
    "/sandboxes/:id/stop",
    userRoute(gw, "lifecycle", async (ctx, user) => {
      sendJson(ctx.res, 200, sandboxJson(sandboxMessage(await sandboxes.stop(user, sandboxRef(ctx)))));
    }),
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
  );
}
