import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { RunscState } from "../../adapters/runsc.js";
import type { AdoptionReport } from "../../engine/engine.js";
import {
  checkpointTmpComplete,
  commitCheckpoint,
  discardCheckpointTmp,
  quarantineSandboxDir,
  sweepDiscardedCheckpoints,
} from "./adoption-files.js";
import { dirBytes } from "./disk.js";
import type { GvisorContext } from "./engine-context.js";
import type { SandboxLayout } from "./layout.js";
import { unmountSandboxFs } from "./sandbox-disk.js";
import { runningHolders } from "../../volumes/sandbox-volumes.js";
import { type GvisorSandboxRecord, type RecordProbe, probeRecord, writeRecord } from "./sandbox-record.js";

/**
 * What a restarted vmm does with each sandbox directory it finds: `classify` decides from what
 * was observed (pure, tested without runsc), `applyAdoption` carries the decision out.
 */

/** What runsc said about the container, if it was asked. */
export type RunscProbe =
  | { kind: "state"; state: RunscState | undefined }
  | { kind: "error"; message: string }
  /** Not asked: a frozen sandbox cannot answer runsc (its control server is frozen too). */
  | { kind: "not-asked" };

/** Everything adoption observes about one sandbox directory. */
export interface AdoptionFacts {
  id: string;
  record: RecordProbe;
  /** `checkpoint.tmp`: absent, complete (marked and non-empty image) or incomplete. */
  checkpointTmp: "absent" | "complete" | "incomplete";
  /** `checkpoint/` exists. */
  checkpointDir: boolean;
  /** `checkpoint/checkpoint.img` exists. */
  checkpointImage: boolean;
  /** The cgroup is frozen and still has tasks (only looked at without a complete checkpoint.tmp). */
  frozenWithTasks: boolean;
  runsc: RunscProbe;
}

/** How the files and processes of a kept sandbox are settled. */
export interface AdoptionCleanup {
  /** `runsc delete` plus a cgroup kill (the container exists but is not running). */
  killRunsc: boolean;
  /** Kill what is left in the cgroup and unmount the sandbox disk (the sandbox is not running). */
  stopLeftovers: boolean;
  /** promote: complete `checkpoint.tmp` → `checkpoint`; discard: remove it; keep: leave it. */
  checkpointTmp: "promote" | "discard" | "keep";
  /** Remove `checkpoint/` (the memory is live again; the image no longer matches the disk). */
  removeCheckpoint: boolean;
}

export type AdoptionDecision =
  /** No record: a create that never finished (the record is written last). Remove everything. */
  | { kind: "remove" }
  /** A record that cannot be read: stop what runs, keep the files aside (#10). */
  | { kind: "quarantine"; reason: string }
  /** Serve it: the record as updated, the report bucket, and what to settle first. */
  | {
      kind: "keep";
      bucket: "running" | "cold" | "unknown";
      record: GvisorSandboxRecord;
      cleanup: AdoptionCleanup;
    };

const NOTHING: AdoptionCleanup = {
  killRunsc: false,
  stopLeftovers: false,
  checkpointTmp: "keep",
  removeCheckpoint: false,
};

/** The adoption decision for one sandbox directory. Pure: `record` is copied, never mutated. */
export function classify(facts: AdoptionFacts, now: number): AdoptionDecision {
  if (facts.record.kind === "missing") return { kind: "remove" };
  if (facts.record.kind === "unreadable") {
    return { kind: "quarantine", reason: facts.record.reason };
  }
  const r: GvisorSandboxRecord = { ...facts.record.record };
  // `runsc checkpoint` ends the sandbox once the image is written, even if runsc still calls
  // it running (seen in the crash matrix): a complete checkpoint.tmp means the stop got that
  // far, and the sandbox is cold whatever runsc says (#26).
  const checkpointed = facts.checkpointTmp === "complete";
  if (!checkpointed && facts.frozenWithTasks) {
    r.thermal = "warm";
    r.warmBy = "freeze";
    r.status = "running";
    return { kind: "keep", bucket: "running", record: r, cleanup: NOTHING };
  }
  let state: RunscState | undefined;
  if (facts.runsc.kind === "error") {
    if (!checkpointed) {
      // Never kill what we cannot see: keep it, marked unknown, for an operator or destroy.
      r.status = "unknown";
      r.restoreError = `runsc state failed at adoption: ${facts.runsc.message}`;
      return { kind: "keep", bucket: "unknown", record: r, cleanup: NOTHING };
    }
  } else if (facts.runsc.kind === "state") {
    state = facts.runsc.state;
  }
  if (checkpointed) state ??= { id: facts.id, status: "stopped", pid: 0 };
  if (!checkpointed && state && (state.status === "running" || state.status === "paused")) {
    if (state.status === "paused") {
      r.thermal = "warm";
      r.warmBy = "runsc";
    } else {
      r.thermal = "hot";
      delete r.warmBy;
    }
    r.status = "running";
    // A running sandbox has no checkpoint in use. The record may still say cold with its
    // checkpoint's size: a restore writes the hot state in memory only (persist.ts doStart).
    delete r.checkpointBytes;
    // A restore that was cut off after runsc restored it: the memory is live, so the old
    // image no longer matches the disk (as start does once the agent answers).
    if (facts.checkpointDir) delete r.restoreError;
    return {
      kind: "keep",
      bucket: "running",
      record: r,
      cleanup: { ...NOTHING, checkpointTmp: "discard", removeCheckpoint: facts.checkpointDir },
    };
  }
  // Not running. A crash between the kill and the rename of a stop: the image is complete (#26).
  const cleanup: AdoptionCleanup = {
    killRunsc: state !== undefined,
    stopLeftovers: true,
    checkpointTmp:
      facts.checkpointTmp === "complete"
        ? "promote"
        : facts.checkpointTmp === "incomplete"
          ? "discard"
          : "keep",
    removeCheckpoint: false,
  };
  if (cleanup.checkpointTmp === "promote") delete r.restoreError;
  if (facts.checkpointImage || cleanup.checkpointTmp === "promote") {
    if (r.thermal !== "cold") r.thermalSince = now;
    r.thermal = "cold";
    r.status = r.restoreError === undefined ? "stopped" : "unknown";
    return { kind: "keep", bucket: r.restoreError === undefined ? "cold" : "unknown", record: r, cleanup };
  }
  r.thermal = "cold";
  r.status = "unknown";
  r.restoreError ??= "sandbox was not running and has no checkpoint";
  return { kind: "keep", bucket: "unknown", record: r, cleanup };
}

/** Observes one sandbox directory; asks runsc only when the answer can matter (and can come). */
export async function observe(ctx: GvisorContext, id: string, layout: SandboxLayout): Promise<AdoptionFacts> {
  const record = probeRecord(layout.record, id);
  const checkpointTmp = checkpointTmpComplete(layout)
    ? "complete"
    : existsSync(layout.checkpointTmp)
      ? "incomplete"
      : "absent";
  const facts: AdoptionFacts = {
    id,
    record,
    checkpointTmp,
    checkpointDir: existsSync(layout.checkpoint),
    checkpointImage: existsSync(join(layout.checkpoint, "checkpoint.img")),
    frozenWithTasks: false,
    runsc: { kind: "not-asked" },
  };
  if (record.kind !== "ok") return facts;
  facts.frozenWithTasks =
    checkpointTmp !== "complete" && ctx.cgroups.isFrozen(id) && ctx.cgroups.pids(id).length > 0;
  if (facts.frozenWithTasks) return facts;
  try {
    facts.runsc = { kind: "state", state: await ctx.runsc.state(id) };
  } catch (e) {
    facts.runsc = { kind: "error", message: (e as Error).message };
  }
  return facts;
}

/** Carries out a decision; returns the record to serve (persisted), if any. */
export async function applyAdoption(
  ctx: GvisorContext,
  id: string,
  layout: SandboxLayout,
  decision: AdoptionDecision,
): Promise<GvisorSandboxRecord | undefined> {
  if (decision.kind === "remove") {
    // Nothing in it was ever handed to anyone: the caller of that create got an error.
    await ctx.teardown(id, layout);
    return undefined;
  }
  if (decision.kind === "quarantine") {
    // Without the record the sandbox cannot be served (no token, no address), but its disk
    // and checkpoint may be somebody's work.
    await ctx.teardown(id, layout, { dir: true });
    const target = quarantineSandboxDir(ctx.sandboxesDir, id, `engine.json unreadable: ${decision.reason}`);
    ctx.log?.error("sandbox record unreadable; directory quarantined", {
      sandbox: id,
      reason: decision.reason,
      quarantined_to: target,
    });
    return undefined;
  }
  const { record: r, cleanup } = decision;
  if (cleanup.killRunsc) await ctx.killSandbox(id).catch(() => undefined);
  if (cleanup.stopLeftovers) {
    await ctx.cgroups.kill(id).catch(() => undefined);
    await unmountSandboxFs(layout).catch(() => undefined);
  }
  if (cleanup.checkpointTmp === "discard") discardCheckpointTmp(layout);
  if (cleanup.checkpointTmp === "promote") {
    commitCheckpoint(layout);
    r.checkpointBytes = dirBytes(layout.checkpoint);
    ctx.log?.info("promoted a complete checkpoint.tmp at adoption", { sandbox: id });
  }
  if (cleanup.removeCheckpoint) rmSync(layout.checkpoint, { recursive: true, force: true });
  // Checkpoints a restore discarded, whose background unlink a crash cut short: never needed.
  sweepDiscardedCheckpoints(layout);
  writeRecord(layout.record, r);
  return r;
}

/**
 * Adopts every sandbox directory not yet known, then kills runsc containers and cgroups that
 * belong to no sandbox.
 */
export async function adoptAll(ctx: GvisorContext): Promise<AdoptionReport> {
  const report: AdoptionReport = { running: [], cold: [], unknown: [], removed: [] };
  let dirs: string[] = [];
  try {
    dirs = readdirSync(ctx.sandboxesDir);
  } catch {
    dirs = [];
  }
  const known = new Set<string>();
  for (const id of dirs) {
    if (id.startsWith(".")) continue; // .quarantine
    if (ctx.sandboxes.has(id) || ctx.pending.has(id)) {
      known.add(id);
      continue;
    }
    const layout = ctx.layoutOf(id);
    const decision = classify(await observe(ctx, id, layout), Date.now());
    const r = await applyAdoption(ctx, id, layout, decision);
    if (decision.kind !== "keep" || !r) {
      report.removed.push(id);
      continue;
    }
    known.add(id);
    report[decision.bucket].push(id);
    ctx.sandboxes.set(id, r);
    ctx.emit("sandbox.adopted", r);
  }
  // Volumes: the running sandboxes hold their host mounts again; mounts nobody holds go.
  await ctx.volumes.adopt(runningHolders(ctx.sandboxes.values()));
  for (const id of await ctx.runsc.list().catch(() => [] as string[])) {
    if (known.has(id)) continue;
    await ctx.killSandbox(id).catch(() => undefined);
    report.removed.push(id);
  }
  for (const id of ctx.cgroups.listIds()) {
    if (known.has(id)) continue;
    await ctx.cgroups.kill(id).catch(() => undefined);
    await ctx.cgroups.remove(id).catch(() => undefined);
  }
  return report;
}
