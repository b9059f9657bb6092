import type { EngineEvent } from "@bhatti/service-vmm/engine";
import { type GvisorEngine, createGvisorEngine } from "@bhatti/service-vmm/gvisor";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testSpec } from "./engine-factory.js";
import { type GvisorTestEnv, createGvisorTestEnv, gvisorFactory, gvisorLeaks } from "./gvisor-factory.js";

/**
 * A thaw's `thermal.resume` event is dispatched after the EnsureHot reply (docs/performance.md,
 * "Warm wake"). The feeds (gateway, thermal service) and the store sync must still see a
 * sandbox's events in the order they happened, each with the state it had then: a pause right
 * behind a thaw must never be seen before that thaw's resume, or a follower would take a frozen
 * sandbox for hot. Real runsc, cgroups and agent.
 */
const skip = gvisorFactory.unavailable();

describe.skipIf(skip !== undefined)("gvisor thaw events: order and state", () => {
  let env: GvisorTestEnv;
  let engine: GvisorEngine;
  const events: EngineEvent[] = [];

  beforeAll(async () => {
    env = await createGvisorTestEnv();
    engine = createGvisorEngine(env.options);
    engine.onEvent((e) => events.push(e));
  }, 180_000);

  afterAll(async () => {
    if (!env) return;
    try {
      for (const s of engine.list()) await engine.destroy(s.id);
      await engine.close();
      const leaks = await gvisorLeaks(env);
      expect(leaks).toEqual(Object.fromEntries(Object.keys(leaks).map((k) => [k, []])));
    } finally {
      await env.teardown();
    }
  }, 120_000);

  const echo = async (id: string, word: string) => {
    const client = await engine.agentClient(id);
    try {
      const r = await client.exec(["echo", word]);
      return { exitCode: r.exitCode, stdout: r.stdout.toString() };
    } finally {
      client.close();
    }
  };

  /** Events are dispatched at the latest on the next turn of the event loop. */
  const settled = () => new Promise<void>((resolve) => setImmediate(resolve));

  it("thaws followed at once by pauses are seen in order, with the state each left; the last one wins", async () => {
    const spec = testSpec("busybox");
    await engine.create(spec);
    const id = spec.id;
    expect(await echo(id, "before")).toEqual({ exitCode: 0, stdout: "before\n" });
    events.length = 0;
    const cycles = 12;
    await engine.pause(id);
    for (let i = 0; i < cycles; i++) {
      // The pause is queued behind the thaw on the sandbox's serializer: it runs as soon as the
      // thaw is done, possibly before the thaw's event was dispatched.
      const woke = engine.ensureHot(id, { warmOnly: true });
      const paused = engine.pause(id);
      expect((await woke).from).toBe("warm");
      expect((await paused).thermal).toBe("warm");
    }
    await engine.ensureHot(id, { warmOnly: true });
    await settled();
    const thermal = events
      .filter((e) => e.sandboxId === id && e.kind.startsWith("thermal."))
      .map((e) => `${e.kind}:${e.thermal}`);
    const expected = [
      "thermal.pause:warm",
      ...Array.from({ length: cycles }, () => ["thermal.resume:hot", "thermal.pause:warm"]).flat(),
      "thermal.resume:hot",
    ];
    expect(thermal).toEqual(expected);
    expect(engine.status(id)?.thermal).toBe("hot");
    expect(await echo(id, "after")).toEqual({ exitCode: 0, stdout: "after\n" });
  }, 120_000);
});
