import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
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
 * runsc delete's backoff) and leaves nothing running, not even runsc's state files (so a start
 * skips `runsc delete`); a start waits for the restored agent with an ACTIVITY round trip, brings
 * back the memory the checkpoint saved, renames the checkpoint away and unlinks it in the
 * background, and writes the hot state in memory only (adoption derives it from runsc).
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

/** runsc's files for container `id` under the engine's --root (state and lock files). */
function runscFilesOf(env: GvisorTestEnv, id: string): string[] {
  return readdirSync(join(env.stateDir, "runsc")).filter((n) => n === id || n.startsWith(`${id}_`));
}

/** What is left of checkpoints in the sandbox's directory (`checkpoint`, `checkpoint.discard.*`). */
function checkpointsOf(env: GvisorTestEnv, id: string): string[] {
  return readdirSync(join(env.stateDir, "sandboxes", id)).filter((n) => n.startsWith("checkpoint"));
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const recordOf = (env: GvisorTestEnv, id: string) =>
  JSON.parse(readFileSync(join(env.stateDir, "sandboxes", id, "engine.json"), "utf8")) as {
    thermal: string;
    checkpointBytes?: number;
  };

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
      // Nor runsc's files for it: the next start has no stale container to delete.
      expect(runscFilesOf(env, id)).toEqual([]);
      const snapshot = events.find((e) => e.kind === "thermal.snapshot" && e.sandboxId === id);
      expect(snapshot?.detail).toMatch(/bytes; .*checkpoint [\d.]+, .*exit [\d.]+, kill [\d.]+/);

      expect((await engine.start(id)).thermal).toBe("hot");
      const restore = events.find((e) => e.kind === "thermal.restore" && e.sandboxId === id);
      expect(restore?.detail).toMatch(/restore [\d.]+, ready [\d.]+/);
      const r = await run(id, "cat /dev/shm/marker");
      expect(r).toEqual({ exitCode: 0, stdout: "kept\n" });
      // The used checkpoint is out of the way at once and its disk freed soon after.
      expect(checkpointsOf(env, id)).not.toContain("checkpoint");
      await until("the discarded checkpoint's unlink", () => checkpointsOf(env, id).length === 0);
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

  it("a stale runsc container left by a crash is still deleted before the restore", async () => {
    const spec = testSpec("busybox");
    await engine.create(spec);
    const id = spec.id;
    expect((await run(id, "echo stale > /dev/shm/marker")).exitCode).toBe(0);
    // runsc's files of the live container, as a crash between the kill and the delete leaves them.
    const saved = mkdtempSync(join(tmpdir(), "bhatti-test-runsc-state-"));
    try {
      const files = runscFilesOf(env, id);
      expect(files.some((f) => f.endsWith(".state"))).toBe(true);
      for (const f of files) copyFileSync(join(env.stateDir, "runsc", f), join(saved, f));
      await engine.stop(id);
      expect(runscFilesOf(env, id)).toEqual([]);
      for (const f of files) copyFileSync(join(saved, f), join(env.stateDir, "runsc", f));
      // runsc knows the container again (its processes are gone).
      const listed = execFileSync(RUNSC_PATH, [`--root=${join(env.stateDir, "runsc")}`, "list", "--quiet"], {
        encoding: "utf8",
      });
      expect(listed.split("\n")).toContain(id);
    } finally {
      rmSync(saved, { recursive: true, force: true });
    }
    expect((await engine.start(id)).thermal).toBe("hot");
    expect(await run(id, "cat /dev/shm/marker")).toEqual({ exitCode: 0, stdout: "stale\n" });
    await engine.destroy(id);
    expect(runscFilesOf(env, id)).toEqual([]);
  }, 180_000);

  it("a restarted engine adopts a restored sandbox as hot although its record still says cold", async () => {
    const spec = testSpec("busybox");
    await engine.create(spec);
    const id = spec.id;
    expect((await run(id, "echo adopted > /dev/shm/marker")).exitCode).toBe(0);
    await engine.stop(id);
    expect(recordOf(env, id)).toMatchObject({ thermal: "cold" });
    expect((await engine.start(id)).thermal).toBe("hot");
    // The restore wrote its hot state in memory only.
    expect(recordOf(env, id)).toMatchObject({ thermal: "cold" });
    const second = createGvisorEngine(env.options);
    try {
      const report = await second.adopt();
      expect(report.running).toContain(id);
      expect(report.cold).not.toContain(id);
      expect(second.status(id)?.thermal).toBe("hot");
      expect(second.status(id)?.engineDetails["checkpoint_bytes"]).toBeUndefined();
      expect(recordOf(env, id).thermal).toBe("hot");
      expect(recordOf(env, id).checkpointBytes).toBeUndefined();
      const client = await second.agentClient(id);
      try {
        const r = await client.exec(["cat", "/dev/shm/marker"]);
        expect(r.stdout.toString()).toBe("adopted\n");
      } finally {
        client.close();
      }
      // The adopting engine takes it through a full cycle.
      await second.stop(id);
      expect((await second.start(id)).thermal).toBe("hot");
      await second.destroy(id);
    } finally {
      await second.close();
    }
  }, 240_000);
});
