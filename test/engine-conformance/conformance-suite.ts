import type { AgentClient } from "@bhatti/agent-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Engine, type EngineEvent, type SandboxInfo, isEngineError } from "@bhatti/service-vmm/engine";
import { type EngineFactory, type EngineHarness, testSpec } from "./engine-factory.js";

/**
 * The engine conformance suite (bhatti v1 §8.2: agent, thermal, snapshot, reliability) plus
 * destroy during a running exec, a missing image, the restore circuit breaker, adoption by a
 * restarted vmm, and a leak check at the end. Sandboxes are shared between cases the way the
 * reference shares them, so the suite stays within a few minutes.
 */
export function defineEngineConformance(factory: EngineFactory): void {
  const skip = factory.unavailable();
  describe.skipIf(skip !== undefined)(`engine conformance: ${factory.name}`, () => {
    let h: EngineHarness;
    let engine: Engine;
    const events: EngineEvent[] = [];

    const exec = async (id: string, argv: string[]) => {
      const client = await h.agent(id);
      try {
        const r = await client.exec(argv);
        return { exitCode: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
      } finally {
        client.close();
      }
    };
    const sh = (id: string, script: string) => exec(id, ["sh", "-c", script]);

    beforeAll(async () => {
      h = await factory.create();
      engine = h.engine;
      engine.onEvent((e) => events.push(e));
    }, 180_000);

    afterAll(async () => {
      if (!h) return;
      try {
        for (const s of engine.list()) await engine.destroy(s.id);
        const leaks = await h.leaks();
        expect(leaks).toEqual(Object.fromEntries(Object.keys(leaks).map((k) => [k, []])));
      } finally {
        await h.dispose();
      }
    }, 120_000);

    describe("agent, thermal, snapshot and reliability (one shared sandbox)", () => {
      let sb: SandboxInfo;

      it("create returns a running, hot sandbox once its agent answers", async () => {
        sb = await engine.create(
          testSpec(h.image, {
            name: "suite",
            cpus: 1,
            memoryMb: 512,
            env: { SUITE_ENV: "e1" },
            secrets: { SUITE_SECRET: "s1" },
          }),
        );
        expect(sb.status).toBe("running");
        expect(sb.thermal).toBe("hot");
        expect(sb.address).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
        expect(sb.agent.token).toMatch(/^[0-9a-f]{32}$/);
        expect(engine.status(sb.id)?.status).toBe("running");
        expect(engine.list().map((s) => s.id)).toContain(sb.id);
      });

      it("exec: exit codes, stdout, identity, env and secrets", async () => {
        expect((await exec(sb.id, ["true"])).exitCode).toBe(0);
        expect((await exec(sb.id, ["false"])).exitCode).toBe(1);
        const r = await exec(sb.id, ["echo", "suite-marker"]);
        expect(r.stdout).toBe("suite-marker\n");
        const id = await sh(sb.id, 'id -u; echo "$SUITE_ENV $SUITE_SECRET"; hostname');
        expect(id.stdout).toBe("1000\ne1 s1\nsuite\n");
      });

      it("names: resolv.conf names only the network's resolver; hosts maps the hostname", async () => {
        const resolv = await sh(sb.id, "cat /etc/resolv.conf");
        const servers = resolv.stdout.split("\n").filter((l) => l.startsWith("nameserver "));
        expect(servers).toEqual([`nameserver ${sb.gateway}`]);
        const hosts = await sh(sb.id, "cat /etc/hosts");
        expect(hosts.stdout).toContain(`${sb.address}\tsuite`);
        expect(hosts.stdout).toMatch(/^127\.0\.0\.1\s+localhost$/m);
      });

      it("files: write, read back byte-exact, stat, list", async () => {
        const client: AgentClient = await h.agent(sb.id);
        try {
          const content = Buffer.from("line 1\nline 2\n\u00e9\u0000binary\n");
          await client.writeFile("/tmp/suite.txt", content, { mode: "0644" });
          const back = await client.readFileBuffer("/tmp/suite.txt");
          expect(Buffer.compare(back.data, content)).toBe(0);
          const st = await client.stat("/tmp/suite.txt");
          expect(st.size).toBe(content.byteLength);
          expect(st.mode).toBe("0644");
          const names = (await client.listDir("/tmp")).map((f) => f.name);
          expect(names).toContain("suite.txt");
        } finally {
          client.close();
        }
      });

      it("limits: memory limit and stats come from the sandbox's cgroups", async () => {
        const s = await engine.stats(sb.id);
        expect(s.thermal).toBe("hot");
        expect(s.memoryBytes).toBeGreaterThan(1024 * 1024);
        expect(s.memoryLimitBytes).toBeGreaterThanOrEqual(512 * 1024 * 1024);
        expect(s.memoryLimitBytes).toBeLessThan(2048 * 1024 * 1024);
        expect(s.cpuUsageNs).toBeGreaterThan(0);
        expect(s.tasks).toBeGreaterThan(0);
      });

      it("thermal: pause makes it warm; a second pause is a no-op", async () => {
        const p = await engine.pause(sb.id);
        expect(p.thermal).toBe("warm");
        expect(p.status).toBe("running");
        const again = await engine.pause(sb.id);
        expect(again.thermal).toBe("warm");
        // Frozen means no progress: an exec cannot complete while warm.
        const client = await h.agent(sb.id);
        const stalled = await Promise.race([
          client.exec(["true"]).then(
            () => "ran",
            () => "failed",
          ),
          new Promise((r) => setTimeout(() => r("stalled"), 300)),
        ]);
        client.close();
        expect(stalled).toBe("stalled");
      });

      it("thermal: ensureHot wakes it; a second ensureHot is a no-op", async () => {
        const r = await engine.ensureHot(sb.id);
        expect(r.from).toBe("warm");
        expect(r.info.thermal).toBe("hot");
        const again = await engine.ensureHot(sb.id);
        expect(again.from).toBe("hot");
        expect(again.wakeMs).toBe(0);
        expect((await exec(sb.id, ["echo", "after-resume"])).stdout).toBe("after-resume\n");
      });

      it("thermal: three pause/ensureHot cycles, then true exits 0", async () => {
        for (let i = 0; i < 3; i++) {
          expect((await engine.pause(sb.id)).thermal).toBe("warm");
          expect((await engine.ensureHot(sb.id)).info.thermal).toBe("hot");
        }
        expect((await exec(sb.id, ["true"])).exitCode).toBe(0);
      });

      it("resume on hot is a no-op; resume on cold is refused", async () => {
        expect((await engine.resume(sb.id)).thermal).toBe("hot");
      });

      it("snapshot: stop then start restores RAM (tmpfs marker) with the same address and token", async () => {
        await sh(sb.id, "echo ram-$$-$RANDOM > /dev/shm/marker");
        const marker = (await exec(sb.id, ["cat", "/dev/shm/marker"])).stdout;
        expect(marker).toMatch(/^ram-/);
        const stopped = await engine.stop(sb.id);
        expect(stopped.status).toBe("stopped");
        expect(stopped.thermal).toBe("cold");
        const stats = await engine.stats(sb.id);
        expect(stats.memoryBytes).toBe(0);
        expect(stats.tasks).toBe(0);
        await expect(engine.resume(sb.id)).rejects.toSatisfy((e) => isEngineError(e, "failed_precondition"));
        expect((await engine.pause(sb.id)).thermal).toBe("cold");
        const started = await engine.start(sb.id);
        expect(started.status).toBe("running");
        expect(started.thermal).toBe("hot");
        expect(started.address).toBe(sb.address);
        expect(started.agent.token).toBe(sb.agent.token);
        expect((await exec(sb.id, ["cat", "/dev/shm/marker"])).stdout).toBe(marker);
      });

      it("reliability: three stop/start cycles keep this cycle's RAM marker and the rootfs marker", async () => {
        await sh(sb.id, "echo rootfs-mark > /workspace/relmark");
        for (let cycle = 1; cycle <= 3; cycle++) {
          const value = `cycle-${cycle}-${Math.random().toString(16).slice(2)}`;
          await sh(sb.id, `echo ${value} > /tmp/ram-marker`);
          expect((await engine.stop(sb.id)).status).toBe("stopped");
          expect((await engine.start(sb.id)).status).toBe("running");
          expect((await exec(sb.id, ["true"])).exitCode).toBe(0);
          expect((await exec(sb.id, ["cat", "/tmp/ram-marker"])).stdout).toBe(`${value}\n`);
          expect((await exec(sb.id, ["cat", "/workspace/relmark"])).stdout).toBe("rootfs-mark\n");
        }
      });

      it("reliability: idempotent transitions (start on running, stop on stopped)", async () => {
        expect((await engine.start(sb.id)).status).toBe("running");
        expect((await exec(sb.id, ["true"])).exitCode).toBe(0);
        expect((await engine.stop(sb.id)).status).toBe("stopped");
        expect((await engine.stop(sb.id)).status).toBe("stopped");
        expect((await engine.start(sb.id)).status).toBe("running");
        expect((await exec(sb.id, ["echo", "ok"])).stdout).toBe("ok\n");
      });

      it("reliability: a wake storm of 12 on a cold sandbox restores it exactly once", async () => {
        await engine.stop(sb.id);
        const restoresBefore = events.filter(
          (e) => e.kind === "thermal.restore" && e.sandboxId === sb.id,
        ).length;
        const racers = Array.from({ length: 12 }, (_, i) =>
          i % 3 === 2
            ? exec(sb.id, ["true"]).then(
                () => "exec",
                () => "exec-failed",
              )
            : engine.ensureHot(sb.id).then((r) => r.info.thermal),
        );
        const results = await Promise.all(racers);
        for (const [i, r] of results.entries()) if (i % 3 !== 2) expect(r).toBe("hot");
        const restores = events.filter((e) => e.kind === "thermal.restore" && e.sandboxId === sb.id).length;
        expect(restores - restoresBefore).toBe(1);
        expect((await exec(sb.id, ["echo", "survived"])).stdout).toBe("survived\n");
      });

      it("destroy removes it and is idempotent", async () => {
        expect(await engine.destroy(sb.id)).toBe(true);
        expect(engine.status(sb.id)).toBeUndefined();
        expect(engine.list().map((s) => s.id)).not.toContain(sb.id);
        expect(await engine.destroy(sb.id)).toBe(false);
        await expect(engine.pause(sb.id)).rejects.toSatisfy((e) => isEngineError(e, "not_found"));
      });
    });

    it("destroy during a running exec removes the sandbox; the exec never reports success", async () => {
      const sb = await engine.create(testSpec(h.image));
      const client = await h.agent(sb.id);
      const abort = new AbortController();
      try {
        const running = client.exec(["sleep", "30"], { signal: abort.signal }).then(
          (r) => `exited ${r.exitCode}`,
          (e: unknown) => `failed: ${(e as Error).message}`,
        );
        await new Promise((r) => setTimeout(r, 300));
        const t0 = Date.now();
        expect(await engine.destroy(sb.id)).toBe(true);
        expect(Date.now() - t0).toBeLessThan(10_000);
        expect(engine.status(sb.id)).toBeUndefined();
        // The sandbox's network is gone, so nothing answers; the caller (the gateway) ends
        // the call. It must never look like the command succeeded.
        const outcome = await Promise.race([
          running,
          new Promise((r) => setTimeout(() => r("pending"), 2000)),
        ]);
        abort.abort();
        const final = outcome === "pending" ? await running : outcome;
        expect(final).not.toBe("exited 0");
        expect(String(final)).toMatch(/^(failed|exited)/);
      } finally {
        client.close();
      }
    });

    it("a distribution image: the sandbox user has passwordless sudo (ExecCanSudo)", async (ctx) => {
      if (h.distroImage === undefined) ctx.skip();
      const sb = await engine.create(testSpec(h.distroImage ?? "", { name: "sudo" }));
      const client = await h.agent(sb.id);
      try {
        const who = await client.exec(["sh", "-c", "id -u; sudo -n id -u"]);
        expect(who.stderr.toString()).toBe("");
        expect(who.stdout.toString()).toBe("1000\n0\n");
        const tee = await client.exec(["sh", "-c", "echo written | sudo tee /etc/bhatti-sudo >/dev/null"]);
        expect(tee.exitCode).toBe(0);
        const owner = await client.exec(["stat", "-c", "%u:%g %n", "/etc/bhatti-sudo"]);
        expect(owner.stdout.toString()).toBe("0:0 /etc/bhatti-sudo\n");
        expect((await client.exec(["sudo", "sh", "-c", "exit 7"])).exitCode).toBe(7);
      } finally {
        client.close();
        await engine.destroy(sb.id);
      }
    });

    it("create with a missing image fails cleanly and leaves nothing behind", async () => {
      const spec = testSpec("no-such-image");
      await expect(engine.create(spec)).rejects.toSatisfy((e) => isEngineError(e, "not_found"));
      expect(engine.status(spec.id)).toBeUndefined();
      const leaks = await h.leaks();
      for (const list of Object.values(leaks)) expect(list.filter((x) => x.includes(spec.id))).toEqual([]);
    });

    it("create with a bad spec is invalid_argument; a duplicate id is already_exists", async () => {
      await expect(engine.create(testSpec(h.image, { name: "-bad name" }))).rejects.toSatisfy((e) =>
        isEngineError(e, "invalid_argument"),
      );
      await expect(engine.create(testSpec(h.image, { memoryMb: 1 }))).rejects.toSatisfy((e) =>
        isEngineError(e, "invalid_argument"),
      );
      const sb = await engine.create(testSpec(h.image));
      try {
        await expect(engine.create(testSpec(h.image, { id: sb.id }))).rejects.toSatisfy((e) =>
          isEngineError(e, "already_exists"),
        );
        expect((await exec(sb.id, ["true"])).exitCode).toBe(0);
      } finally {
        await engine.destroy(sb.id);
      }
    });

    it("a failed restore opens the circuit breaker until start --force", async () => {
      const sb = await engine.create(testSpec(h.image));
      try {
        await sh(sb.id, "echo keep > /dev/shm/k");
        await engine.stop(sb.id);
        const restoreSnapshot = h.corruptSnapshot(sb.id);
        await expect(engine.start(sb.id)).rejects.toSatisfy((e) => isEngineError(e, "internal"));
        const broken = engine.status(sb.id);
        expect(broken?.status).toBe("unknown");
        expect(broken?.restoreError).toBeTruthy();
        const t0 = Date.now();
        await expect(engine.ensureHot(sb.id)).rejects.toSatisfy((e) =>
          isEngineError(e, "failed_precondition"),
        );
        await expect(engine.start(sb.id)).rejects.toSatisfy((e) => isEngineError(e, "failed_precondition"));
        expect(Date.now() - t0).toBeLessThan(1000);
        restoreSnapshot();
        const fixed = await engine.start(sb.id, { force: true });
        expect(fixed.status).toBe("running");
        expect(fixed.restoreError).toBeUndefined();
        expect((await exec(sb.id, ["cat", "/dev/shm/k"])).stdout).toBe("keep\n");
      } finally {
        await engine.destroy(sb.id);
      }
    });

    it("a restarted engine adopts running, warm and cold sandboxes without disturbing them", async () => {
      const hot = await engine.create(testSpec(h.image));
      const warm = await engine.create(testSpec(h.image));
      const cold = await engine.create(testSpec(h.image));
      const second = await h.reopen();
      try {
        await sh(hot.id, "echo alive > /dev/shm/a");
        await engine.pause(warm.id);
        await sh(cold.id, "echo cold > /dev/shm/c");
        await engine.stop(cold.id);
        const report = await second.adopt();
        expect(report.running.sort()).toEqual([hot.id, warm.id].sort());
        expect(report.cold).toEqual([cold.id]);
        expect(second.status(hot.id)?.thermal).toBe("hot");
        expect(second.status(warm.id)?.thermal).toBe("warm");
        expect(second.status(cold.id)?.thermal).toBe("cold");
        expect(second.agentEndpoint(hot.id)).toEqual(engine.agentEndpoint(hot.id));
        // The sandbox kept running through the "restart": same RAM.
        expect((await exec(hot.id, ["cat", "/dev/shm/a"])).stdout).toBe("alive\n");
        expect((await second.ensureHot(warm.id)).from).toBe("warm");
        expect((await second.ensureHot(cold.id)).from).toBe("cold");
        expect((await exec(cold.id, ["cat", "/dev/shm/c"])).stdout).toBe("cold\n");
      } finally {
        for (const s of [hot, warm, cold]) await second.destroy(s.id);
        for (const s of [hot, warm, cold]) await engine.destroy(s.id);
        await second.close();
      }
    });

    // Regression: a restore after a checkpoint taken while clients held agent connections (the
    // gateway's pooled spares, a running exec) found the agent deaf ("agent not ready after
    // 30000 ms"). Reported after `bhatti serve` restarts (adopt, then a SIGTERM snapshot), so
    // each cycle has a restarted engine adopt the sandbox, stop it, and another one start it.
    it("stop/start with open agent connections, across restarted engines, keeps the agent answering", async () => {
      const sb = await engine.create(testSpec(h.image));
      const engines: Engine[] = [];
      const adopted = async () => {
        const e = await h.reopen();
        engines.push(e);
        await e.adopt();
        return e;
      };
      let owner: Engine = engine;
      try {
        await sh(sb.id, "echo kept > /dev/shm/open-conns");
        for (let cycle = 1; cycle <= 3; cycle++) {
          owner = await adopted();
          const pooled = await h.agent(sb.id, { pool: true });
          const running = new AbortController();
          try {
            // One use makes the pool dial its authenticated spares; give them time to connect.
            expect((await pooled.exec(["true"])).exitCode).toBe(0);
            const longExec = pooled.exec(["sleep", "60"], { signal: running.signal }).catch(() => undefined);
            await new Promise((r) => setTimeout(r, 300));
            expect((await owner.stop(sb.id)).thermal).toBe("cold");
            running.abort();
            await longExec;
          } finally {
            running.abort();
            pooled.close();
          }
          owner = await adopted();
          const started = await owner.start(sb.id);
          expect(started.status, started.restoreError).toBe("running");
          expect((await exec(sb.id, ["cat", "/dev/shm/open-conns"])).stdout).toBe("kept\n");
        }
      } finally {
        await owner.destroy(sb.id);
        await engine.destroy(sb.id);
        for (const e of engines) await e.close();
      }
    }, 120_000);

    // Regression: the gateway keeps one pooled agent client per sandbox across stop/start. A
    // spare it dialed while the stop was under way must not outlive the checkpoint: the next
    // streamed exec takes a spare without any retry, and a dead one failed it.
    it("a pooled client used during stop works after start (no spare survives the checkpoint)", async () => {
      const sb = await engine.create(testSpec(h.image));
      const pooled = await h.agent(sb.id, { pool: true });
      try {
        expect((await pooled.exec(["true"])).exitCode).toBe(0);
        // Keep the client busy (each use makes it dial spares) until the stop has finished.
        let stopping = true;
        const busy = (async () => {
          while (stopping) {
            await pooled.activity({ signal: AbortSignal.timeout(500) }).catch(() => undefined);
            await new Promise((r) => setTimeout(r, 5));
          }
        })();
        try {
          expect((await engine.stop(sb.id)).thermal).toBe("cold");
        } finally {
          stopping = false;
          await busy;
        }
        expect((await engine.start(sb.id)).status).toBe("running");
        // As the gateway does after every wake: a spare dialed while the sandbox was paused for
        // its checkpoint went to the test relay, which accepted it before the guest could, so
        // it may be dead; streams cannot be retried, so callers drop spares after a wake.
        pooled.drainPool();
        for (let i = 0; i < 3; i++) {
          const proc = await pooled.execStream(["echo", `after-${i}`]);
          proc.closeStdin();
          const events: string[] = [];
          for await (const ev of proc) {
            events.push(
              ev.type === "exit" ? `exit ${ev.exitCode}` : `${ev.type} ${ev.data.toString().trim()}`,
            );
          }
          expect(events).toEqual([`stdout after-${i}`, "exit 0"]);
        }
      } finally {
        pooled.close();
        await engine.destroy(sb.id);
      }
    }, 120_000);
  });
}
