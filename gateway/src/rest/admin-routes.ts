import type { Event, MetricsSnapshot, User, UserLimitsUpdate } from "@bhatti/proto";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { requireAdmin } from "../auth/request-auth.js";
import type { GatewayContext } from "../gateway-context.js";
import { readJsonObject, sendJson } from "./json-body.js";
import type { RestContext, RestRouter } from "./router.js";
import { intParam, queryParam, userRoute } from "./user-route.js";

const iso = (t: { seconds: bigint; nanos: number } | undefined) =>
  t === undefined ? "" : timestampDate(t as Parameters<typeof timestampDate>[0]).toISOString();

export function userJson(u: User): Record<string, unknown> {
  const l = u.limits;
  return {
    id: u.id,
    name: u.name,
    is_admin: u.isAdmin,
    created_at: iso(u.createdAt),
    limits: {
      max_sandboxes: l?.maxSandboxes ?? 0,
      max_cpus_per_sandbox: l?.maxCpusPerSandbox ?? 0,
      max_memory_mb_per_sandbox: l?.maxMemoryMbPerSandbox ?? 0,
      max_volume_storage_mb: l?.maxVolumeStorageMb ?? 0,
      max_snapshots: l?.maxSnapshots ?? 0,
      max_images: l?.maxImages ?? 0,
      creates_per_minute: l?.createsPerMinute ?? 0,
      execs_per_minute: l?.execsPerMinute ?? 0,
    },
  };
}

const limitKeys = {
  max_sandboxes: "maxSandboxes",
  max_cpus_per_sandbox: "maxCpusPerSandbox",
  max_memory_mb_per_sandbox: "maxMemoryMbPerSandbox",
  max_volume_storage_mb: "maxVolumeStorageMb",
  max_snapshots: "maxSnapshots",
  max_images: "maxImages",
  creates_per_minute: "createsPerMinute",
  execs_per_minute: "execsPerMinute",
} as const;

/** Limits from a JSON object with v1 names; only keys present are set. */
const MAX_UINT32 = 0xffff_ffff;

function limitsFromJson(raw: unknown): Partial<Record<(typeof limitKeys)[keyof typeof limitKeys], number>> {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== "object" || Array.isArray(raw))
    throw new ConnectError("limits must be an object", Code.InvalidArgument);
  const out: Partial<Record<(typeof limitKeys)[keyof typeof limitKeys], number>> = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    const field = limitKeys[key as keyof typeof limitKeys];
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

function eventJson(e: Event): Record<string, unknown> {
  let meta: unknown = {};
  try {
    meta = JSON.parse(e.metaJson || "{}");
  } catch {
    meta = {};
  }
  return { id: Number(e.id), ts: iso(e.ts), type: e.type, user_id: e.userId, sandbox_id: e.sandboxId, meta };
}

function metricsJson(m: MetricsSnapshot): Record<string, unknown> {
  return {
    ts: iso(m.ts),
    sandboxes_total: m.sandboxesTotal,
    sandboxes_by_status: m.sandboxesByStatus,
    sandboxes_by_thermal: m.sandboxesByThermal,
    users_total: m.usersTotal,
    users_with_sandboxes: m.usersWithSandboxes,
    sandboxes_per_user: m.sandboxesPerUser,
    host_mem_total_mb: Number(m.hostMemTotalMb),
    host_mem_available_mb: Number(m.hostMemAvailableMb),
    host_disk_total_mb: Number(m.hostDiskTotalMb),
    host_disk_available_mb: Number(m.hostDiskAvailableMb),
    host_load_1m: m.hostLoad1m,
    events_total: Number(m.eventsTotal),
  };
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
  );

  router.add(
    "GET",
    "/users/:user",
    userRoute(gw, "read", async (ctx, user) => {
      const { user: found } = await store.getUser({ actingUserId: user.id, user: ctx.params["user"] ?? "" });
      if (found === undefined) throw new ConnectError("user not found", Code.NotFound);
      sendJson(ctx.res, 200, userJson(found));
    }),
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
  );
}
