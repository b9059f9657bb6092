import { describe, expect, it } from "vitest";
import { createKeyedLock } from "./keyed-lock.js";

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe("createKeyedLock", () => {
  it("runs one key's tasks in order, one at a time; other keys run meanwhile", async () => {
    const lock = createKeyedLock();
    const order: string[] = [];
    const first = deferred();
    const a1 = lock.run("a", async () => {
      order.push("a1 start");
      await first.promise;
      order.push("a1 end");
    });
    const a2 = lock.run("a", async () => {
      order.push("a2");
    });
    await lock.run("b", async () => {
      order.push("b");
    });
    expect(order).toEqual(["a1 start", "b"]);
    expect(lock.busy("a")).toBe(true);
    first.resolve();
    await Promise.all([a1, a2]);
    expect(order).toEqual(["a1 start", "b", "a1 end", "a2"]);
  });

  it("a failed task rejects its caller but does not block the next; the key is free afterwards", async () => {
    const lock = createKeyedLock();
    const failed = lock.run("a", () => Promise.reject(new Error("boom")));
    const next = lock.run("a", () => Promise.resolve(42));
    await expect(failed).rejects.toThrow("boom");
    await expect(next).resolves.toBe(42);
    await new Promise<void>((r) => setImmediate(r));
    expect(lock.busy("a")).toBe(false);
  });
});
