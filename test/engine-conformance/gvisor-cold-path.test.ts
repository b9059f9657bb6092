import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import type { EngineEvent } from "@bhatti/service-vmm/engine";
import { type GvisorEngine, createGvisorEngine } from "@bhatti/service-vmm/gvisor";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testSpec } from "./engine-factory.js";
import {
  type GvisorTestEnv,
  RUNSC_PATH,
  createGvisorTestEnv,
  gvisorFactory,
  gvisorLeaks,
} from "./gvisor-factory.js";

/**
 * The cold path's own steps (docs/performance.md, "Cold wake"), at the real boundary (real runsc,
 * cgroups, netns): a stop ends the checkpointed sandbox's runsc processes itself (not through
 * runsc delete's backoff) and leaves nothing running; a start waits for the restored agent with
 * an ACTIVITY round trip and brings back the memory the checkpoint saved.
 */
const skip = gvisorFactory.unavailable();

/** Pids of host processes running the runsc binary whose command line names `id`. */
function runscProcessesOf(id: string): number[] {
  const binary = statSync(RUNSC_PATH);
  const found: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = statSync(`/proc/${e}/exe`);
      if (s.dev !== binary.dev || s.ino !== binary.ino) continue;
      if (readFileSync(`/proc/${e}/cmdline`, "utf8").includes(id)) found.push(Number(e));
    } catch {
      // exited, or not ours to read
    }
  }
  return found;
}

describe.skipIf(skip !== undefined)("gvisor cold path: stop and start", () => {
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

  const run = async (id: string, script: string) => {
    const client = await engine.agentClient(id);
    try {
      const r = await client.exec(["sh", "-c", script], { root: true });
      return { exitCode: r.exitCode, stdout: r.stdout.toString() };
    } finally {
      client.close();
    }
  };

  it("stop leaves no runsc process and no container; start restores memory and the agent, cycle after cycle", async () => {
    const spec = testSpec("busybox");
    await engine.create(spec);
    const id = spec.id;
    // /dev/shm is sandbox memory: only the checkpoint can bring it back.
    expect((await run(id, "echo kept > /dev/shm/marker")).exitCode).toBe(0);
    expect(runscProcessesOf(id).length).toBeGreaterThan(0);
    for (let cycle = 0; cycle < 3; cycle++) {
      events.length = 0;
      expect((await engine.stop(id)).thermal).toBe("cold");
      // Nothing of the sandbox runs any more: no Sentry, gofer or stub, no container in runsc's root.
      expect(runscProcessesOf(id)).toEqual([]);
      const containers = execFileSync(
        RUNSC_PATH,
        [`--root=${join(env.stateDir, "runsc")}`, "list", "--quiet"],
        {
          encoding: "utf8",
        },
      );
      expect(containers.split("\n")).not.toContain(id);
      const snapshot = events.find((e) => e.kind === "thermal.snapshot" && e.sandboxId === id);
      expect(snapshot?.detail).toMatch(/bytes; .*checkpoint [\d.]+, .*exit [\d.]+, kill [\d.]+/);

      expect((await engine.start(id)).thermal).toBe("hot");
      const restore = events.find((e) => e.kind === "thermal.restore" && e.sandboxId === id);
      expect(restore?.detail).toMatch(/restore [\d.]+, ready [\d.]+/);
      const r = await run(id, "cat /dev/shm/marker");
      expect(r).toEqual({ exitCode: 0, stdout: "kept\n" });
    }
    await engine.destroy(id);
    expect(runscProcessesOf(id)).toEqual([]);
  }, 240_000);

  it("a stop of a warm (frozen) sandbox works the same", async () => {
    const spec = testSpec("busybox");
    await engine.create(spec);
    expect((await run(spec.id, "echo warm > /dev/shm/marker")).exitCode).toBe(0);
    expect((await engine.pause(spec.id)).thermal).toBe("warm");
    expect((await engine.stop(spec.id)).thermal).toBe("cold");
    expect(runscProcessesOf(spec.id)).toEqual([]);
    await engine.start(spec.id);
    expect(await run(spec.id, "cat /dev/shm/marker")).toEqual({ exitCode: 0, stdout: "warm\n" });
    await engine.destroy(spec.id);
  }, 180_000);
});
