import { describe, expect, it } from "vitest";
import { createSingleFlight } from "./single-flight.js";

describe("createSingleFlight", () => {
  it("concurrent calls for one key share one run; other keys run their own", async () => {
    const flight = createSingleFlight<number>();
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const fn = async () => {
      runs++;
      await gate;
      return runs;
    };
    const a = flight.do("a", fn);
    const b = flight.do("a", fn);
    expect(flight.get("a")).toBe(a);
    expect(b).toBe(a);
    expect(flight.has("a")).toBe(true);
    const other = flight.do("b", fn);
    expect(flight.values()).toEqual([a, other]);
    release();
    expect(await a).toBe(2);
    await other;
    expect(runs).toBe(2);
    expect(flight.has("a")).toBe(false);
    expect(flight.values()).toEqual([]);
  });

  it("a failure is shared by the joined callers and frees the key for a fresh call", async () => {
    const flight = createSingleFlight<string>();
    const failing = flight.do("a", () => Promise.reject(new Error("boom")));
    const joined = flight.do("a", () => Promise.resolve("never run"));
    await expect(failing).rejects.toThrow("boom");
    await expect(joined).rejects.toThrow("boom");
    await expect(flight.do("a", () => Promise.resolve("fresh"))).resolves.toBe("fresh");
  });
});
