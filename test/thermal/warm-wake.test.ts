import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ThermalState, VmmService } from "@bhatti/proto";
import { type ServiceClient, createServiceClient } from "@bhatti/runtime";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gvisorFactory } from "../engine-conformance/gvisor-factory.js";
import {
  type Product,
  type SandboxJson,
  eventsOf,
  exec,
  startProduct,
  waitForSandbox,
} from "./product-harness.js";

/**
 * The warm wake's connection handling through the whole product: the gateway keeps the agent
 * client's spare connections across a freeze and pre-dials new ones as the wake starts; spares
 * that a checkpoint, a restore or a vmm restart made stale are never used. The thermal policy is
 * kept out of the way (1 h thresholds): the test drives pause, stop and start on the vmm itself,
 * as the thermal service would, so the gateway learns of them only through the vmm's event feed.
 */
describe.skipIf(gvisorFactory.unavailable() !== undefined)("warm wake (product)", () => {
  let product: Product;
  let vmm: ServiceClient<typeof VmmService>;

  const create = async (name: string) => {
    const res = await product.http("POST", "/sandboxes", { body: { name, image: "busybox" } });
    expect(res.status, res.text).toBe(201);
    return res.json<SandboxJson>();
  };
  const echo = async (id: string, word: string) => {
    const r = await exec(product, id, ["echo", word]);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.stdout).toBe(`${word}\n`);
  };
  const thermalOf = async (id: string) =>
    (await product.thermal().client.getThermal({ sandboxId: id })).sandbox;
  /**
   * The gateway, the thermal service and the store agree the sandbox is hot and running. The
   * thermal service learns of a thaw from the vmm's event feed, so its view is awaited.
   */
  const expectHot = async (id: string) => {
    expect((await product.http("GET", `/sandboxes/${id}`)).json<SandboxJson>()).toMatchObject({
      status: "running",
      thermal: "hot",
    });
    const deadline = Date.now() + 15_000;
    for (;;) {
      const view = await thermalOf(id);
      if (view?.thermal === ThermalState.HOT && view.status === "running") return;
      if (Date.now() > deadline)
        throw new Error(`thermal service never saw ${id} hot: ${JSON.stringify(view)}`);
      await sleep(50);
    }
  };
  /** The wake events of a sandbox once there are `n` (they are recorded off the request path). */
  const wakesOf = async (id: string, n: number) => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const wakes = await eventsOf(product, id, "thermal.wake");
      if (wakes.length >= n || Date.now() > deadline) return wakes.map((w) => w.meta["from_state"]);
      await sleep(100);
    }
  };

  beforeAll(async () => {
    product = await startProduct({
      flags: ["--thermal-warm-after=1h", "--thermal-cold-after=1h", "--thermal-tick=100ms"],
    });
    vmm = createServiceClient(VmmService, join(product.socketDir, "vmm.sock"));
  }, 180_000);

  afterAll(async () => {
    vmm?.close();
    await product?.dispose();
  }, 180_000);

  it("wakes a frozen sandbox for exec again and again, keeping its spares; thermal state and wake events right", async () => {
    const sb = await create("warm-cycles");
    await echo(sb.id, "first");
    for (let i = 0; i < 4; i++) {
      // Right after an exec: the spares it left are alive when the sandbox freezes.
      await vmm.client.pauseSandbox({ id: sb.id });
      await waitForSandbox(product, sb.id, (s) => s.thermal === "warm", 15_000);
      await echo(sb.id, `warm-${i}`);
      await expectHot(sb.id);
    }
    expect(await wakesOf(sb.id, 4)).toEqual(["warm", "warm", "warm", "warm"]);
  }, 120_000);

  it("never uses a spare that a checkpoint and a restore behind the gateway made stale", async () => {
    const sb = await create("stale-spares");
    await echo(sb.id, "before");
    // Frozen first (the gateway keeps the spares), then checkpointed and restored by the vmm
    // alone: the gateway hears only the events, and the exec must not ride a pre-restore spare.
    await vmm.client.pauseSandbox({ id: sb.id });
    await waitForSandbox(product, sb.id, (s) => s.thermal === "warm", 15_000);
    await vmm.client.stopSandbox({ id: sb.id });
    await waitForSandbox(product, sb.id, (s) => s.thermal === "cold", 15_000);
    await vmm.client.startSandbox({ id: sb.id });
    await echo(sb.id, "after-restore");
    await expectHot(sb.id);

    // Hot, checkpointed and restored with spares in hand (no pause in between).
    await echo(sb.id, "again");
    await vmm.client.stopSandbox({ id: sb.id });
    await vmm.client.startSandbox({ id: sb.id });
    await echo(sb.id, "after-second-restore");

    // And a cold wake after the gateway had seen the freeze: exec restores it.
    await vmm.client.pauseSandbox({ id: sb.id });
    await waitForSandbox(product, sb.id, (s) => s.thermal === "warm", 15_000);
    await vmm.client.stopSandbox({ id: sb.id });
    await waitForSandbox(product, sb.id, (s) => s.thermal === "cold", 15_000);
    // The gateway's direct thaw never restores (cold wakes are the thermal service's, bounded).
    const thaw = await vmm.client.ensureHot({ id: sb.id, warmOnly: true }).catch((e: unknown) => e);
    expect(ConnectError.from(thaw).code).toBe(Code.FailedPrecondition);
    expect((await vmm.client.getSandboxStatus({ id: sb.id })).sandbox?.thermal).toBe(ThermalState.COLD);
    await echo(sb.id, "cold-wake");
    await expectHot(sb.id);
    expect(await wakesOf(sb.id, 1)).toEqual(["cold"]);
  }, 180_000);

  it("a checkpoint decided before a warm wake never cuts off the command sent after the thaw", async () => {
    const sb = await create("wake-vs-checkpoint");
    await echo(sb.id, "before");
    const cycles = 8;
    const answers: { status: number; exitCode: number | undefined }[] = [];
    for (let i = 0; i < cycles; i++) {
      // Hot again (the previous cycle may have left it cold), then frozen.
      await echo(sb.id, `hot-${i}`);
      await vmm.client.pauseSandbox({ id: sb.id });
      await waitForSandbox(product, sb.id, (s) => s.thermal === "warm", 15_000);
      // The exec's direct thaw and an idle checkpoint as the thermal service asks for it (only if
      // still warm) start together, the checkpoint first on odd cycles. Either the checkpoint
      // wins (the thaw is refused and the exec wakes the sandbox from cold) or the thaw does
      // (the checkpoint leaves the hot sandbox alone): the command runs once and answers 200.
      const append = () => exec(product, sb.id, ["sh", "-c", `echo c${i} >> /tmp/bhatti-test-appends`]);
      const checkpoint = () => vmm.client.stopSandbox({ id: sb.id, onlyIfWarm: true });
      const [r] =
        i % 2 === 0
          ? await Promise.all([append(), checkpoint()])
          : (await Promise.all([checkpoint(), append()])).reverse();
      const res = r as Awaited<ReturnType<typeof append>>;
      answers.push({ status: res.status, exitCode: res.body.exit_code });
    }
    const log = await exec(product, sb.id, ["cat", "/tmp/bhatti-test-appends"]);
    expect(log.status).toBe(200);
    const lines = log.body.stdout.split("\n").filter((l) => l !== "");
    const outcomes = answers.map((a, i) => ({
      i,
      status: a.status,
      exitCode: a.exitCode,
      ran: lines.filter((l) => l === `c${i}`).length,
    }));
    expect(outcomes).toEqual(answers.map((_, i) => ({ i, status: 200, exitCode: 0, ran: 1 })));
    await expectHot(sb.id);
  }, 180_000);

  it("an idle checkpoint (only if warm) leaves a hot sandbox as it is; a plain stop still checkpoints it", async () => {
    const sb = await create("only-if-warm");
    await echo(sb.id, "before");
    const kept = await vmm.client.stopSandbox({ id: sb.id, onlyIfWarm: true });
    expect(kept.sandbox?.thermal).toBe(ThermalState.HOT);
    await expectHot(sb.id);
    const stopped = await vmm.client.stopSandbox({ id: sb.id });
    expect(stopped.sandbox?.thermal).toBe(ThermalState.COLD);
    await echo(sb.id, "after");
  }, 120_000);

  /** SIGKILLs the vmm and waits until its successor (started by serve) reports the sandbox in `state`. */
  const killVmmAndAwait = async (id: string, state: ThermalState) => {
    const pid = product.childPid("services/vmm/dist");
    expect(pid).toBeDefined();
    process.kill(pid as number, "SIGKILL");
    const deadline = Date.now() + 60_000;
    for (;;) {
      const now = product.childPid("services/vmm/dist");
      const status = await vmm.client.getSandboxStatus({ id }).catch(() => undefined);
      if (now !== undefined && now !== pid && status?.sandbox?.thermal === state) return;
      if (Date.now() > deadline) throw new Error(`vmm never came back with ${id} in ${state}: ${now}`);
      await sleep(100);
    }
  };

  it("wakes a frozen sandbox after the vmm was SIGKILLed and came back (the event feed dropped)", async () => {
    const sb = await create("vmm-killed");
    await echo(sb.id, "before");
    await vmm.client.pauseSandbox({ id: sb.id });
    await waitForSandbox(product, sb.id, (s) => s.thermal === "warm", 15_000);
    // The new vmm adopts the frozen sandbox as warm (from the cgroup, not the record).
    await killVmmAndAwait(sb.id, ThermalState.WARM);
    await echo(sb.id, "after-vmm-restart");
    await expectHot(sb.id);
    // The thaw did not rewrite the record (it still says warm): a vmm killed now adopts the
    // sandbox as hot all the same, and it keeps serving.
    await killVmmAndAwait(sb.id, ThermalState.HOT);
    await echo(sb.id, "after-second-restart");
    await expectHot(sb.id);
  }, 180_000);
});
