import { Code, ConnectError } from "@connectrpc/connect";
import type { AuthenticatedUser } from "../auth/authenticated-user.js";
import type { GatewayContext } from "../gateway-context.js";
import type { RateClass } from "../limits/rate-limiter.js";
import { retryAfterOf } from "../limits/rate-limiter.js";
import type { RestContext, RestHandler } from "./router.js";

/** Sandbox quotas do not refill with time; clients are told to come back in a minute. */
const QUOTA_RETRY_AFTER_SEC = 60;

/**
 * An authenticated route: takes a token of the user's `cls` bucket first, and gives every 429
 * (rate limit or quota) a Retry-After header.
 */
export function userRoute(
  gw: GatewayContext,
  cls: RateClass,
  handler: (ctx: RestContext, user: AuthenticatedUser) => Promise<void> | void,
): RestHandler {
  const { limiter } = gw.runtime;
  return async (ctx) => {
    const user = ctx.user;
    if (user === undefined) throw new ConnectError("authorization required", Code.Unauthenticated);
    try {
      limiter.take(user.record, cls);
      await handler(ctx, user);
    } catch (e) {
      if (e instanceof ConnectError && !ctx.res.headersSent) {
        // 429s always say when to come back; so does a 503 for too many wakes at once.
        const retryAfter =
          retryAfterOf(e) ?? (e.code === Code.ResourceExhausted ? QUOTA_RETRY_AFTER_SEC : undefined);
        if (retryAfter !== undefined) ctx.res.setHeader("Retry-After", String(retryAfter));
      }
      throw e;
    }
  };
}

/** A string query parameter, or undefined. */
export function queryParam(ctx: RestContext, name: string): string | undefined {
  const v = ctx.url.searchParams.get(name);
  return v === null ? undefined : v;
}

/** A non-negative integer query parameter (absent = undefined). */
export function intParam(ctx: RestContext, name: string): number | undefined {
  const v = queryParam(ctx, name);
  if (v === undefined || v === "") return undefined;
  if (!/^\d+$/.test(v))
    throw new ConnectError(`${name} must be a non-negative integer`, Code.InvalidArgument);
  return Number(v);
}

/** The `:id` path parameter. */
export function sandboxRef(ctx: RestContext): string {
  return ctx.params["id"] ?? "";
}
