import type { User } from "@bhatti/proto";
import { Code, ConnectError } from "@connectrpc/connect";
import { type TokenBucket, takeToken } from "./token-bucket.js";

/**
 * Request classes, as in v1: `create` is POST /sandboxes; `exec` is exec, file writes and
 * WebSockets; `read` is everything else. Added since: `lifecycle` is stop, start, destroy and
 * keep_hot changes, which cost a checkpoint or a restore each.
 */
export type RateClass = "create" | "exec" | "read" | "lifecycle";

export interface RateLimits {
  readonly capacity: number;
  readonly perMinute: number;
}

export interface RateLimiterOptions {
  /** Defaults when a user record carries no rate (10 creates/min, 120 execs/min). */
  createsPerMinute?: number;
  execsPerMinute?: number;
  /** The read class is not per-user configurable: burst 60, 1200/min (v1). */
  read?: RateLimits;
  /** Stop/start/destroy/keep_hot (default burst 10, 20/min), raised to a user's creates per minute. */
  lifecycle?: RateLimits;
  /** Bound on tracked users; the least recently seen is evicted first (v1: 10k). */
  maxUsers?: number;
  now?: () => number;
}

export interface RateLimiter {
  /** Takes a token or throws ResourceExhausted "rate limit exceeded" carrying the wait. */
  take(user: Pick<User, "id" | "limits" | "isAdmin">, cls: RateClass): void;
  /** Forgets a user's buckets (after its limits changed). */
  reset(userId: string): void;
}

/** The error a limiter throws; `retryAfterSec` becomes the Retry-After header. */
export class RateLimitError extends ConnectError {
  constructor(readonly retryAfterSec: number) {
    super("rate limit exceeded", Code.ResourceExhausted, { "retry-after": String(retryAfterSec) });
  }
}

/** Seconds to wait, for Retry-After, when an error carries one (in its `retry-after` metadata). */
export function retryAfterOf(e: unknown): number | undefined {
  if (e instanceof RateLimitError) return e.retryAfterSec;
  if (!(e instanceof ConnectError)) return undefined;
  const v = Number(e.metadata.get("retry-after") ?? Number.NaN);
  return Number.isFinite(v) && v >= 0 ? v : undefined;
}

/**
 * Per-user token buckets. The burst of the create and exec classes equals the user's
 * per-minute rate (so the defaults allow 10 creates, then one every 6 s). Admins are not
 * limited on reads.
 */
export function createRateLimiter(options: RateLimiterOptions = {}): RateLimiter {
  const now = options.now ?? Date.now;
  const maxUsers = options.maxUsers ?? 10_000;
  const read = options.read ?? { capacity: 60, perMinute: 1200 };
  const lifecycle = options.lifecycle ?? { capacity: 10, perMinute: 20 };
  const users = new Map<string, Map<RateClass, TokenBucket>>();

  const limitsOf = (user: Pick<User, "limits">, cls: RateClass): RateLimits => {
    if (cls === "read") return read;
    if (cls === "lifecycle") {
      // A user allowed N creates a minute can also stop, start or destroy N a minute.
      const creates = user.limits?.createsPerMinute ?? 0;
      return {
        capacity: Math.max(lifecycle.capacity, creates),
        perMinute: Math.max(lifecycle.perMinute, creates),
      };
    }
    const rate =
      cls === "create"
        ? user.limits?.createsPerMinute || (options.createsPerMinute ?? 10)
        : user.limits?.execsPerMinute || (options.execsPerMinute ?? 120);
    return { capacity: rate, perMinute: rate };
  };

  return {
    take(user, cls) {
      if (cls === "read" && user.isAdmin) return;
      let buckets = users.get(user.id);
      if (buckets === undefined) {
        if (users.size >= maxUsers) {
          const oldest = users.keys().next().value;
          if (oldest !== undefined) users.delete(oldest);
        }
        buckets = new Map();
      } else {
        users.delete(user.id);
      }
      users.set(user.id, buckets);
      const limits = limitsOf(user, cls);
      let bucket = buckets.get(cls);
      if (
        bucket === undefined ||
        bucket.capacity !== limits.capacity ||
        bucket.perMinute !== limits.perMinute
      ) {
        bucket = { ...limits, tokens: limits.capacity, updatedAt: now() };
        buckets.set(cls, bucket);
      }
      const waitMs = takeToken(bucket, now());
      if (waitMs > 0) throw new RateLimitError(Math.max(1, Math.ceil(waitMs / 1000)));
    },
    reset: (userId) => void users.delete(userId),
  };
}
