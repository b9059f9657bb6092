/** A token bucket: `capacity` tokens, refilled continuously at `perMinute` tokens a minute. */
export interface TokenBucket {
  capacity: number;
  perMinute: number;
  tokens: number;
  updatedAt: number;
}

/**
 * Takes one token if there is one. Returns 0 when taken, else the milliseconds until a token
 * will be available (for Retry-After).
 */
export function takeToken(bucket: TokenBucket, now: number): number {
  const elapsed = Math.max(0, now - bucket.updatedAt);
  bucket.tokens = Math.min(bucket.capacity, bucket.tokens + (elapsed * bucket.perMinute) / 60_000);
  bucket.updatedAt = now;
  if (bucket.tokens >= 1) {
    bucket.tokens -= 1;
    return 0;
  }
  if (bucket.perMinute <= 0) return 60_000;
  return Math.ceil(((1 - bucket.tokens) * 60_000) / bucket.perMinute);
}
