// The agent's resident spawner where it matters: a real gVisor sandbox (the product's runsc,
// ptrace platform) with the agent package (agent/spawner built into it). Commands run as the
// spawner's children; a spawner killed from inside the sandbox (as root, under a running exec)
// gives that exec a clear error, the next exec works and a new spawner takes over; a cold cycle
// (checkpoint, restore) keeps the same spawner and its sockets working.
import { SPAWNER_LOST_TEXT } from "@bhatti/agent/testing";
import type { AgentClient } from "@bhatti/agent-client";
import type { Engine } from "@bhatti/service-vmm/engine";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EngineHarness, testSpec } from "../engine-conformance/engine-factory.js";
import { gvisorFactory } from "../engine-conformance/gvisor-factory.js";

const skip = gvisorFactory.unavailable();

describe.skipIf(skip !== undefined)("the resident spawner in a gVisor sandbox", () => {
  let h: EngineHarness;
  let engine: Engine;
  let id: string;

  const withAgent = async <T>(fn: (client: AgentClient) => Promise<T>): Promise<T> => {
    const client = await h.agent(id);
    try {
      return await fn(client);
    } finally {
      client.close();
    }
  };
  const run = (argv: string[], options: { root?: boolean } = {}) =>
    withAgent(async (client) => {
      const r = await client.exec(argv, options);
      return { exitCode: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
    });
  /** The command's parent: its pid and name (the spawner's binary is `spawner`). */
  const parent = async () => {
    const r = await run(["sh", "-c", 'echo "$PPID $(cat /proc/$PPID/comm)"']);
    const [pid, comm] = r.stdout.trim().split(" ");
    return { pid: Number(pid), comm };
  };
  /** Execs until one runs under a spawner other than `previous` (a restart is asynchronous). */
  const spawnerOtherThan = async (previous: number) => {
    const end = Date.now() + 30_000;
    for (;;) {
      const p = await parent();
      if (p.comm === "spawner" && p.pid !== previous) return p.pid;
      if (Date.now() > end) throw new Error(`no new spawner: last parent ${p.pid} ${p.comm}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  beforeAll(async () => {
    h = await gvisorFactory.create();
    engine = h.engine;
    id = (await engine.create(testSpec(h.image, { name: "spawner" }))).id;
  }, 180_000);

  afterAll(async () => {
    if (!h) return;
    try {
      for (const s of engine.list()) await engine.destroy(s.id);
    } finally {
      await h.dispose();
    }
  }, 180_000);

  it("runs commands as the spawner's children, with exit codes, output and error texts", async () => {
    const spawner = await spawnerOtherThan(0);
    expect(spawner).toBeGreaterThan(1);
    expect(await run(["sh", "-c", "echo out; echo err >&2; exit 3"])).toEqual({
      exitCode: 3,
      stdout: "out\n",
      stderr: "err\n",
    });
    expect((await run(["sh", "-c", "kill -KILL $$"])).exitCode).toBe(137);
    expect((await run(["id", "-u"])).stdout).toBe("1000\n");
    expect((await run(["id", "-u"], { root: true })).stdout).toBe("0\n");
    expect((await run(["ls", "-1", "/proc/self/fd"])).stdout).toBe("0\n1\n2\n3\n");
    await expect(run(["no-such-binary-xyz"])).rejects.toThrow(
      'agent error: start: exec: "no-such-binary-xyz": executable file not found in $PATH',
    );
    const big = await run(["sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' x; echo end >&2"]);
    expect(big.stdout.length).toBe(1048576);
    expect(big.stderr).toBe("end\n");
    const ten = await Promise.all(
      Array.from({ length: 10 }, (_, i) => run(["sh", "-c", `echo n${i}; exit ${i}`])),
    );
    expect(ten.map((r) => [r.exitCode, r.stdout])).toEqual(
      Array.from({ length: 10 }, (_, i) => [i, `n${i}\n`]),
    );
  }, 180_000);

  it("kill -9 of the spawner under a running exec: that exec's error is clear, the next exec works, a new spawner takes over", async () => {
    const before = (await parent()).pid;
    // The command kills its own parent (the spawner) and carries on: its exit status is lost
    // (and, if the kill beat the spawner's start report, whether it started at all).
    await expect(run(["sh", "-c", "kill -9 $PPID; echo after"], { root: true })).rejects.toThrow(
      `agent error: ${SPAWNER_LOST_TEXT}`,
    );
    expect(await run(["sh", "-c", "echo ok"])).toEqual({ exitCode: 0, stdout: "ok\n", stderr: "" });
    const after = await spawnerOtherThan(before);
    expect(after).not.toBe(before);
    expect((await run(["true"])).exitCode).toBe(0);
  }, 180_000);

  it("a cold cycle (checkpoint, restore) keeps the spawner and its sockets working", async () => {
    await spawnerOtherThan(0);
    const before = await parent();
    expect(before.comm).toBe("spawner");
    expect((await engine.stop(id)).thermal).toBe("cold");
    expect((await engine.start(id)).status).toBe("running");
    // The same spawner (restored with the sandbox), and its stdio socket works.
    expect(await parent()).toEqual(before);
    expect(await run(["sh", "-c", "cat; echo done"])).toEqual({ exitCode: 0, stdout: "done\n", stderr: "" });
    const ten = await Promise.all(Array.from({ length: 10 }, (_, i) => run(["sh", "-c", `echo n${i}`])));
    expect(ten.map((r) => r.stdout)).toEqual(Array.from({ length: 10 }, (_, i) => `n${i}\n`));
  }, 300_000);
});
