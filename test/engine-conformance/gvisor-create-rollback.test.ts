import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isEngineError } from "@bhatti/service-vmm/engine";
import { type GvisorEngine, createGvisorEngine } from "@bhatti/service-vmm/gvisor";
import { testSpec } from "./engine-factory.js";
import { type GvisorTestEnv, createGvisorTestEnv, gvisorFactory, gvisorLeaks } from "./gvisor-factory.js";

/**
 * A create that fails after every resource was taken (directory, disk mount, network, cgroup,
 * runsc container) is undone completely by its undo stack, and the engine stays usable.
 */
describe.skipIf(gvisorFactory.unavailable() !== undefined)("gvisor create rollback", () => {
  let env: GvisorTestEnv;
  const engines: GvisorEngine[] = [];

  beforeAll(async () => {
    env = await createGvisorTestEnv();
  });
  afterAll(async () => {
    try {
      for (const e of engines) {
        for (const s of e.list()) await e.destroy(s.id).catch(() => undefined);
        await e.close();
      }
    } finally {
      await env.teardown();
    }
  });

  it("an agent that never answers in time: create fails and leaves nothing; the next create works", async () => {
    // The container runs (runsc run succeeded) but the agent cannot answer within 1 ms.
    const impatient = createGvisorEngine({ ...env.options, readyTimeoutMs: 1 });
    engines.push(impatient);
    await impatient.adopt();
    const spec = testSpec("busybox", { diskSizeMb: 64 });
    const err = await impatient.create(spec).catch((e: unknown) => e);
    expect(isEngineError(err, "internal")).toBe(true);
    expect((err as Error).message).toMatch(/agent not ready/);
    expect(impatient.status(spec.id)).toBeUndefined();
    expect(impatient.isCreating(spec.id)).toBe(false);
    const leaks = await gvisorLeaks(env);
    expect(leaks).toEqual(Object.fromEntries(Object.keys(leaks).map((k) => [k, []])));

    const patient = createGvisorEngine(env.options);
    engines.push(patient);
    const sb = await patient.create(testSpec("busybox", { id: spec.id, diskSizeMb: 64 }));
    expect(sb).toMatchObject({ id: spec.id, status: "running", thermal: "hot" });
    expect(await patient.destroy(sb.id)).toBe(true);
  });
});
