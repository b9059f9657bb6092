import { existsSync, mkdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { AGENT_CONTROL_PORT } from "@bhatti/agent-protocol";
import { crashPoint } from "@bhatti/runtime";
import { EngineError } from "../../engine/engine-error.js";
import { commitCheckpoint, discardCheckpoint, markCheckpointComplete } from "./adoption-files.js";
import { quiesceForCheckpoint } from "./checkpoint-quiesce.js";
import { killRunscProcesses } from "./runsc-exit.js";
import { dirBytes, syncDir } from "./disk.js";
import type { GvisorContext } from "./engine-context.js";
import { mountSandboxFs, unmountSandboxFs } from "./sandbox-disk.js";
import { type GvisorSandboxRecord, writeRecord } from "./sandbox-record.js";
import { holderOf } from "../../volumes/sandbox-volumes.js";

/** Durations of a transition's steps, for the event's detail ("network 4.1, restore 212.0, …" ms). */
function phaseClock() {
  let last = performance.now();
  const parts: string[] = [];
  return {
    mark(name: string) {
      const now = performance.now();
      parts.push(`${name} ${(now - last).toFixed(1)}`);
      last = now;
    },
    toString: () => `${parts.join(", ")} ms`,
  };
}

/**
 * Waits for every step, then throws the first failure: nothing of a failed start is still
 * running when its cleanup starts.
 */
async function allSettledOrThrow(steps: readonly Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(steps)).find((s) => s.status === "rejected");
  if (failed !== undefined) throw failed.reason;
}

/**
 * Checkpoint and restore (cold ↔ hot), as Firecracker keeps snapshots in `persist.rs` apart from
 * building a VM. Each function runs inside the sandbox's serializer.
 */

/** hot/warm → cold: checkpoint into `checkpoint.tmp`, kill, rename over `checkpoint` (#26). */
export async function doStop(ctx: GvisorContext, r: GvisorSandboxRecord): Promise<void> {
  if (r.thermal === "cold") return;
  const { runsc, options, log } = ctx;
  const layout = ctx.layoutOf(r.id);
  // Refused before anything changes: the sandbox stays as it is (hot or warm).
  ctx.admission.checkCheckpointSpace(r.id, r.memoryMb);
  const t0 = performance.now();
  const phases = phaseClock();
  await ctx.resume(r);
  phases.mark("resume");
  rmSync(layout.checkpointTmp, { recursive: true, force: true });
  mkdirSync(layout.checkpointTmp, { recursive: true, mode: 0o700 });
  try {
    await quiesceForCheckpoint({
      id: r.id,
      dialer: options.dialer,
      runsc,
      host: r.address,
      controlPort: AGENT_CONTROL_PORT,
      agentToken: options.init.kind === "agent" ? r.token : undefined,
      timeoutMs: 5_000,
      log,
    });
    phases.mark("quiesce");
    await runsc.checkpoint(r.id, layout.checkpointTmp, { flags: r.runsc?.flags ?? [] });
    phases.mark("checkpoint");
    const img = join(layout.checkpointTmp, "checkpoint.img");
    if (!existsSync(img) || statSync(img).size === 0) throw new Error("checkpoint image is missing or empty");
    syncDir(layout.checkpointTmp);
    markCheckpointComplete(layout);
    phases.mark("sync");
  } catch (e) {
    rmSync(layout.checkpointTmp, { recursive: true, force: true });
    // quiesceForCheckpoint left it paused by runsc: let it run again.
    if ((await runsc.state(r.id).catch(() => undefined))?.status === "paused")
      await runsc.resume(r.id).catch(() => undefined);
    // Keep the sandbox alive when the checkpoint failed (v1 R5/R6): park it warm.
    const s = await runsc.state(r.id).catch(() => undefined);
    if (s?.status === "running") {
      await ctx.pause(r).catch(() => undefined);
      throw new EngineError(
        "internal",
        `checkpoint failed, sandbox kept alive (warm): ${(e as Error).message}`,
      );
    }
    r.restoreError = `checkpoint failed and the sandbox died: ${(e as Error).message}`;
    r.status = "unknown";
    writeRecord(layout.record, r);
    throw new EngineError("internal", r.restoreError);
  }
  crashPoint("vmm.stop.after-checkpoint");
  // Its state is saved: end its runsc processes here, so that the delete below needs no wait.
  await killRunscProcesses(() => ctx.cgroups.pids(r.id), runsc.path, 2_000);
  phases.mark("exit");
  // A crash here leaves runsc's record of a container whose processes are gone.
  crashPoint("vmm.stop.after-runsc-kill");
  await ctx.killSandbox(r.id);
  phases.mark("kill");
  // A crash from here to setThermal leaves a complete checkpoint.tmp that adoption promotes.
  crashPoint("vmm.stop.after-kill");
  commitCheckpoint(layout);
  crashPoint("vmm.stop.after-rename");
  await unmountSandboxFs(layout);
  await ctx.volumes.release(r.id);
  r.checkpointBytes = dirBytes(layout.checkpoint);
  ctx.setThermal(r, "cold");
  phases.mark("release");
  ctx.emit("thermal.snapshot", r, performance.now() - t0, `${r.checkpointBytes} bytes; ${phases}`);
}

/** cold → hot: restore from `checkpoint` (warm → hot is a resume); `force` retries a failed restore. */
export async function doStart(ctx: GvisorContext, r: GvisorSandboxRecord, force: boolean): Promise<void> {
  if (r.thermal === "warm") return ctx.resume(r);
  if (r.thermal === "hot") return;
  if (r.restoreError !== undefined && !force) {
    throw new EngineError(
      "failed_precondition",
      `sandbox ${r.id} failed to restore (${r.restoreError}); run \`bhatti start --force\` to retry, or destroy and recreate it`,
    );
  }
  const { runsc, cgroups, options } = ctx;
  const layout = ctx.layoutOf(r.id);
  if (!existsSync(join(layout.checkpoint, "checkpoint.img"))) {
    r.status = "unknown";
    r.restoreError = "no checkpoint on disk";
    writeRecord(layout.record, r);
    throw new EngineError("failed_precondition", `sandbox ${r.id} has no checkpoint to restore`);
  }
  // A cleared circuit breaker must reach the disk (adoption keeps a record's restoreError).
  const clearsRestoreError = r.restoreError !== undefined;
  delete r.restoreError;
  const t0 = performance.now();
  const phases = phaseClock();
  try {
    await ctx.ensureAgentPackage();
    // Three independent steps (host mounts, the network service, runsc's state dir), run side
    // by side: together they were ~35 ms of a restore one after the other.
    await allSettledOrThrow([
      mountSandboxFs(layout, r.imageRootfs),
      options.network
        .attach({ sandboxId: r.id, userId: r.userId, sandboxName: r.name, requestedAddress: r.address })
        .then((net) => {
          if (net.address !== r.address)
            throw new Error(`network gave address ${net.address}, expected ${r.address}`);
        }),
      // Forgets a stale container of this id (left by a crash), so the restore can use it. A
      // clean stop already deleted it: then runsc keeps no state for the id and the delete, a
      // Go binary start (10–20 ms), is skipped.
      runsc.hasState(r.id) ? runsc.delete(r.id) : Promise.resolve(),
    ]);
    phases.mark("mount+network+delete");
    // The checkpoint fixed the mount destinations; their host mounts must be back first.
    await ctx.volumes.acquire(holderOf(r));
    const procs = cgroups.ensureUnified(r.id);
    phases.mark("volumes+cgroup");
    crashPoint("vmm.start.before-restore");
    await runsc.restore(r.id, layout.bundle, layout.checkpoint, {
      cgroupProcs: [procs],
      logFile: layout.log,
      timeoutMs: 120_000,
      ...(r.runsc === undefined ? {} : { flags: r.runsc.flags }),
    });
    phases.mark("restore");
    crashPoint("vmm.start.after-restore");
    await ctx.waitReady(r, "answer");
    phases.mark("ready");
  } catch (e) {
    await ctx.killSandbox(r.id).catch(() => undefined);
    await ctx.volumes.release(r.id).catch(() => undefined);
    r.restoreError = (e as Error).message;
    r.status = "unknown";
    writeRecord(layout.record, r);
    ctx.emit("thermal.restore_failed", r, performance.now() - t0, r.restoreError);
    throw new EngineError("internal", `restore of sandbox ${r.id} failed: ${r.restoreError}`, { cause: e });
  }
  // The restored memory is live now; the old image no longer matches the disk. Renamed away
  // here, unlinked in the background (off the reply path).
  void discardCheckpoint(layout).catch((e: unknown) =>
    ctx.log?.warn("removing a discarded checkpoint failed", { sandbox: r.id, error: e }),
  );
  delete r.checkpointBytes;
  if (clearsRestoreError) ctx.setThermal(r, "hot");
  else {
    // In memory only, as the warm thaw (engine-context resume): the record's durable write (two
    // fsyncs) is not needed because adoption never trusts a record's thermal state over runsc's:
    // a record still saying cold beside a running container is adopted hot (adoption.ts
    // classify). The next durable write (pause, stop) carries it.
    r.thermal = "hot";
    r.thermalSince = Date.now();
    r.status = "running";
  }
  phases.mark("commit");
  ctx.emit("thermal.restore", r, performance.now() - t0, String(phases));
}

/** doStart behind host admission: a restore that will really run must fit the host (#25). */
export async function doStartAdmitted(
  ctx: GvisorContext,
  r: GvisorSandboxRecord,
  force: boolean,
): Promise<void> {
  if (r.thermal !== "cold" || (r.restoreError !== undefined && !force)) return doStart(ctx, r, force);
  const admitted = ctx.admission.admit(
    r.id,
    "restore",
    { memoryMb: r.memoryMb, diskMb: 0 },
    ctx.committedMemoryMb(),
  );
  try {
    await doStart(ctx, r, force);
  } finally {
    admitted.release();
  }
}
