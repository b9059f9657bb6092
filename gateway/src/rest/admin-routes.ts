import { arrayOf, common, error, json, jsonBody, op, ref } from "../openapi/schemas.js";
import type { UserLimitsUpdate } from "@bhatti/proto";
import {
  type UserLimitName,
  eventJson,
  metricsJson,
  userJson,
  userLimitFields,
} from "@bhatti/proto/rest-json";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { requireAdmin } from "../auth/request-auth.js";
import type { GatewayContext } from "../gateway-context.js";
import { readJsonObject, sendJson } from "./json-body.js";
import type { RestContext, RestRouter } from "./router.js";
import { intParam, queryParam, userRoute } from "./user-route.js";

/** Limits from a JSON object with v1 names; only keys present are set. */
const MAX_UINT32 = 0xffff_ffff;

function limitsFromJson(raw: unknown): Partial<Record<(typeof userLimitFields)[UserLimitName], number>> {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== "object" || Array.isArray(raw))
    throw new ConnectError("limits must be an object", Code.InvalidArgument);
  const out: Partial<Record<(typeof userLimitFields)[UserLimitName], number>> = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    const field = userLimitFields[key as UserLimitName];
    if (field === undefined)
      throw new ConnectError(`unknown limit ${JSON.stringify(key)}`, Code.InvalidArgument);
    // Limits are uint32 on the wire: a larger number would fail the store call's encoding (a 500).
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > MAX_UINT32) {
      throw new ConnectError(`${key} must be an integer from 0 to ${MAX_UINT32}`, Code.InvalidArgument);
    }
    out[field] = value;
  }
  return out;
}

/** `since`/`until` as RFC 3339 or a relative duration like `24h`, `7d`, `30m`. */
function timeParam(ctx: RestContext, name: string): Date | undefined {
  const v = queryParam(ctx, name);
  if (v === undefined || v === "") return undefined;
  const rel = /^(\d+)(m|h|d)$/.exec(v);
  if (rel !== null) {
    const unit = { m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as "m" | "h" | "d"];
    return new Date(Date.now() - Number(rel[1]) * unit);
  }
  const d = new Date(v);
  if (Number.isNaN(d.getTime()))
    throw new ConnectError(`${name} must be a date or a duration like 24h`, Code.InvalidArgument);
  return d;
}

/** Users, events and metrics for admins (the store checks the acting user too). */
export function registerAdminRoutes(router: RestRouter, gw: GatewayContext): void {
  const { store } = gw.clients;
  const { limiter } = gw.runtime;

  router.add(
    "GET",
    "/users",
    userRoute(gw, "read", async (ctx, user) => {
      requireAdmin(user);
      const { users } = await store.listUsers({ actingUserId: user.id });
      sendJson(
        ctx.res,
        200,
        users.map((e) => ({
          ...(e.user !== undefined ? userJson(e.user) : {}),
          sandbox_count: e.sandboxCount,
        })),
      );
    }),
    {
      doc: op("List users (admin)", {
        "200": json(arrayOf("User"), "Users"),
        "403": error("Admin only"),
        ...common,
      }),
    },
  );

  router.add(
    "POST",
    "/users",
    userRoute(gw, "read", async (ctx, user) => {
      requireAdmin(user);
      const body = await readJsonObject(ctx.req);
      const name = body["name"];
      if (typeof name !== "string" || name === "")
        throw new ConnectError("name is required", Code.InvalidArgument);
      const isAdmin = body["is_admin"] === true;
      const res = await store.createUser({
        actingUserId: user.id,
        name,
        isAdmin,
        limits: limitsFromJson(body["limits"]) as UserLimitsUpdate,
      });
      if (res.user === undefined) throw new ConnectError("store returned no user", Code.Internal);
      sendJson(ctx.res, 201, { ...userJson(res.user), api_key: res.apiKey });
    }),
    {
      doc: op(
        "Create a user (admin); the API key is returned once",
        {
          "201": json(ref("User"), "Created"),
          "403": error("Admin only"),
          "409": error("Name in use"),
          ...common,
        },
        {
          requestBody: jsonBody({
            type: "object",
            required: ["name"],
            properties: {
              name: { type: "string" },
              is_admin: { type: "boolean" },
              limits: ref("UserLimits"),
            },
          }),
        },
      ),
    },
  );

  router.add(
    "GET",
    "/users/:user",
    userRoute(gw, "read", async (ctx, user) => {
      const { user: found } = await store.getUser({ actingUserId: user.id, user: ctx.params["user"] ?? "" });
      if (found === undefined) throw new ConnectError("user not found", Code.NotFound);
      sendJson(ctx.res, 200, userJson(found));
    }),
    {
      doc: op(
        "Get a user (admins any, others themselves)",
        { "200": json(ref("User"), "User"), "404": error("Not found"), ...common },
        {
          parameters: [{ name: "user", in: "path", required: true, schema: { type: "string" } }],
        },
      ),
    },
  );

  router.add(
    "PATCH",
    "/users/:user",
    userRoute(gw, "read", async (ctx, user) => {
      requireAdmin(user);
      const body = await readJsonObject(ctx.req);
      const res = await store.updateUserLimits({
        actingUserId: user.id,
        user: ctx.params["user"] ?? "",
        limits: limitsFromJson(body["limits"] ?? body) as UserLimitsUpdate,
      });
      if (res.user === undefined) throw new ConnectError("store returned no user", Code.Internal);
      limiter.reset(res.user.id);
      gw.auth.authenticator.forgetUser(res.user.id);
      sendJson(ctx.res, 200, userJson(res.user));
    }),
    {
      doc: op(
        "Update a user's limits (admin)",
        { "200": json(ref("User"), "User"), "403": error("Admin only"), ...common },
        {
          parameters: [{ name: "user", in: "path", required: true, schema: { type: "string" } }],
          requestBody: jsonBody({ type: "object", properties: { limits: ref("UserLimits") } }),
        },
      ),
    },
  );

  router.add(
    "DELETE",
    "/users/:user",
    userRoute(gw, "read", async (ctx, user) => {
      requireAdmin(user);
      const res = await store.deleteUser({ actingUserId: user.id, user: ctx.params["user"] ?? "" });
      // Its only key is gone: forget it and end the WebSockets and streams opened with it.
      gw.auth.revokeKey(res.revokedKeySha256);
      sendJson(ctx.res, 200, { status: "deleted" });
    }),
    {
      doc: op(
        "Delete a user (admin; refused while it owns sandboxes or secrets)",
        {
          "200": json({ type: "object" }, "Deleted"),
          "403": error("Admin only"),
          "409": error("Still owns resources"),
          ...common,
        },
        { parameters: [{ name: "user", in: "path", required: true, schema: { type: "string" } }] },
      ),
    },
  );

  router.add(
    "POST",
    "/users/:user/rotate-key",
    userRoute(gw, "read", async (ctx, user) => {
      const res = await store.rotateApiKey({ actingUserId: user.id, user: ctx.params["user"] ?? "" });
      gw.auth.revokeKey(res.revokedKeySha256);
      if (res.user === undefined) throw new ConnectError("store returned no user", Code.Internal);
      sendJson(ctx.res, 200, { ...userJson(res.user), api_key: res.apiKey });
    }),
    {
      doc: op(
        "Replace a user's API key (the old one fails at once)",
        { "200": json(ref("User"), "New key"), ...common },
        {
          parameters: [{ name: "user", in: "path", required: true, schema: { type: "string" } }],
        },
      ),
    },
  );

  router.add(
    "GET",
    "/events",
    userRoute(gw, "read", async (ctx, user) => {
      requireAdmin(user);
      const since = timeParam(ctx, "since");
      const until = timeParam(ctx, "until");
      const res = await store.queryEvents({
        actingUserId: user.id,
        filter: {
          ...(since !== undefined ? { since: timestampFromDate(since) } : {}),
          ...(until !== undefined ? { until: timestampFromDate(until) } : {}),
          typePrefix: queryParam(ctx, "type") ?? "",
          userId: queryParam(ctx, "user") ?? "",
          sandboxId: queryParam(ctx, "sandbox") ?? "",
          limit: intParam(ctx, "limit") ?? 0,
          beforeId: BigInt(intParam(ctx, "before_id") ?? 0),
        },
      });
      sendJson(ctx.res, 200, { events: res.events.map(eventJson), total: Number(res.total) });
    }),
    {
      doc: op(
        "Query events newest first (admin)",
        {
          "200": json(
            { type: "object", properties: { events: arrayOf("Event"), total: { type: "integer" } } },
            "Events",
          ),
          "403": error("Admin only"),
          ...common,
        },
        {
          parameters: ["type", "user", "sandbox", "since", "until", "limit", "before_id"].map((name) => ({
            name,
            in: "query",
            schema: { type: "string" },
          })),
        },
      ),
    },
  );

  router.add(
    "GET",
    "/metrics",
    userRoute(gw, "read", async (ctx, user) => {
      requireAdmin(user);
      const since = timeParam(ctx, "since");
      const res = await store.getMetrics({
        actingUserId: user.id,
        ...(since !== undefined ? { since: timestampFromDate(since) } : {}),
        limit: intParam(ctx, "limit") ?? 0,
      });
      sendJson(ctx.res, 200, {
        current: res.current === undefined ? null : metricsJson(res.current),
        history: res.history.map(metricsJson),
      });
    }),
    {
      doc: op(
        "Live metrics and history (admin)",
        {
          "200": json(
            {
              type: "object",
              required: ["current", "history"],
              properties: {
                current: {
                  oneOf: [ref("Metrics"), { type: "null" }],
                  description: "null before the first sample",
                },
                history: arrayOf("Metrics"),
              },
            },
            "Metrics",
          ),
          "403": error("Admin only"),
          ...common,
        },
        {
          parameters: [
            { name: "since", in: "query", schema: { type: "string" } },
            { name: "limit", in: "query", schema: { type: "integer" } },
          ],
        },
      ),
    },
  );
}
