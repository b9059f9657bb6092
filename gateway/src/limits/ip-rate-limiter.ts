import { type RateLimits, RateLimitError } from "./rate-limiter.js";
import { type TokenBucket, takeToken } from "./token-bucket.js";

export interface IpRateLimiterOptions extends RateLimits {
  /** Bound on tracked addresses; the least recently seen is evicted first. */
  maxAddresses?: number;
  now?: () => number;
}

/** Per-client-address token buckets for requests that carry no known key. */
export interface IpRateLimiter {
  /** Takes a token of `remoteAddr`'s bucket or throws RateLimitError (429 with Retry-After). */
  take(remoteAddr: string): void;
  size(): number;
}

/** `::ffff:127.0.0.1` and `127.0.0.1` are one client. */
function normalizeAddress(addr: string): string {
  return addr.startsWith("::ffff:") ? addr.slice(7) : addr;
}

export function createIpRateLimiter(options: IpRateLimiterOptions): IpRateLimiter {
  const now = options.now ?? Date.now;
  const maxAddresses = options.maxAddresses ?? 50_000;
  const buckets = new Map<string, TokenBucket>();
  return {
    take(remoteAddr) {
      const addr = normalizeAddress(remoteAddr);
      let bucket = buckets.get(addr);
      if (bucket === undefined) {
        if (buckets.size >= maxAddresses) {
          const oldest = buckets.keys().next().value;
          if (oldest !== undefined) buckets.delete(oldest);
        }
        bucket = {
          capacity: options.capacity,
          perMinute: options.perMinute,
          tokens: options.capacity,
          updatedAt: now(),
        };
      } else {
        buckets.delete(addr);
      }
      // Re-inserted on every use: the map's first key is the least recently seen address.
      buckets.set(addr, bucket);
      const waitMs = takeToken(bucket, now());
      if (waitMs > 0) throw new RateLimitError(Math.max(1, Math.ceil(waitMs / 1000)));
    },
    size: () => buckets.size,
  };
}
