import { describe, expect, it } from "vitest";
import { createIpRateLimiter } from "./ip-rate-limiter.js";
import { RateLimitError, createRateLimiter } from "./rate-limiter.js";

const limitedAfter = (take: () => void, max: number): number => {
  for (let i = 0; i < max; i++) {
    try {
      take();
    } catch (e) {
      expect(e).toBeInstanceOf(RateLimitError);
      return i;
    }
  }
  return max;
};

describe("per-address limiter", () => {
  it("allows the burst, then refuses with a Retry-After until tokens refill; addresses are separate", () => {
    let now = 0;
    const limiter = createIpRateLimiter({ capacity: 5, perMinute: 60, now: () => now });
    expect(limitedAfter(() => limiter.take("10.0.0.1"), 100)).toBe(5);
    const err = (() => {
      try {
        limiter.take("10.0.0.1");
      } catch (e) {
        return e as RateLimitError;
      }
      return undefined;
    })();
    expect(err?.retryAfterSec).toBe(1);
    // IPv4-mapped IPv6 is the same client.
    expect(() => limiter.take("::ffff:10.0.0.1")).toThrow(RateLimitError);
    expect(() => limiter.take("10.0.0.2")).not.toThrow();
    now += 1_000;
    expect(() => limiter.take("10.0.0.1")).not.toThrow();
  });

  it("tracks a bounded number of addresses, evicting the least recently seen", () => {
    const limiter = createIpRateLimiter({ capacity: 1, perMinute: 1, maxAddresses: 100, now: () => 0 });
    for (let i = 0; i < 1_000; i++) limiter.take(`10.1.${i >> 8}.${i & 255}`);
    expect(limiter.size()).toBe(100);
  });
});

describe("lifecycle class", () => {
  it("has its own bucket, never below the user's creates per minute", () => {
    const limiter = createRateLimiter({ lifecycle: { capacity: 3, perMinute: 3 }, now: () => 0 });
    const slow = { id: "a", isAdmin: false, limits: { createsPerMinute: 1 } } as never;
    const fast = { id: "b", isAdmin: false, limits: { createsPerMinute: 50 } } as never;
    expect(limitedAfter(() => limiter.take(slow, "lifecycle"), 100)).toBe(3);
    expect(() => limiter.take(slow, "read")).not.toThrow();
    expect(limitedAfter(() => limiter.take(fast, "lifecycle"), 100)).toBe(50);
  });
});
