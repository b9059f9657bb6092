import { describe, expect, it } from "vitest";
import { createSourceLimiter } from "./source-limiter.js";

describe("source limiter", () => {
  const limits = { queriesPerSecond: 10, burst: 3, maxInFlight: 2, maxTcpConnections: 1 };

  it("gives a burst, then the sustained rate, per source", () => {
    let t = 0;
    const limiter = createSourceLimiter(limits, 16, () => t);
    expect([1, 2, 3, 4].map(() => limiter.take("a"))).toEqual([true, true, true, false]);
    expect(limiter.take("b")).toBe(true); // another source has its own bucket
    t += 100; // one token at 10/s
    expect([limiter.take("a"), limiter.take("a")]).toEqual([true, false]);
  });

  it("caps in-flight queries and connections, and frees them on release", () => {
    const limiter = createSourceLimiter(limits, 16, () => 0);
    expect([limiter.acquire("a"), limiter.acquire("a"), limiter.acquire("a")]).toEqual([true, true, false]);
    limiter.release("a");
    expect(limiter.acquire("a")).toBe(true);
    expect([limiter.openConnection("a"), limiter.openConnection("a")]).toEqual([true, false]);
    limiter.closeConnection("a");
    expect(limiter.openConnection("a")).toBe(true);
  });

  it("never tracks more than maxSources: idle ones are forgotten, busy ones keep new sources out", () => {
    let t = 0;
    const limiter = createSourceLimiter(limits, 2, () => t);
    limiter.take("a");
    limiter.acquire("b");
    expect(limiter.take("c")).toBe(false); // a's bucket is not full yet, b is busy
    t += 1000;
    expect(limiter.take("c")).toBe(true); // a refilled and was forgotten
    expect(limiter.size()).toBe(2);
  });
});
