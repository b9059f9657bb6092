import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import type { UndoStack } from "@bhatti/runtime";
import type { ImageRecord } from "../../../adapters/image-registry.js";
import type { SandboxSpec } from "../../../engine/engine.js";
import { writeBootConfig, writeBundle } from "../bundle.js";
import type { GvisorContext } from "../engine-context.js";
import { prepareBootDiskAndNetwork } from "../sandbox-prepare.js";
import { type GvisorSandboxRecord, newRunningRecord } from "../sandbox-record.js";

/**
 * Boots a pool entry: the image with the template's boot config (the agent accepts one
 * CLAIM_REQ, with a token of the entry's own), on its user's network, not checkpointed.
 *
 * Booted, not restored from the template: a restored entry carries the template's restored
 * agent (and gVisor 20240729's epoll state after a restore, docs/performance.md "The agent
 * spinning after a cold cycle"); a booted one is a plain sandbox until its claim. The boot costs
 * the fill ~150 ms more, off every create's path.
 * The undo steps go on `undo`; the caller commits or rolls them back.
 */
export async function bootPoolEntry(
  ctx: GvisorContext,
  spec: SandboxSpec,
  image: ImageRecord,
  diskSizeMb: number,
  undo: UndoStack,
): Promise<GvisorSandboxRecord> {
  const { runsc, cgroups } = ctx;
  const layout = ctx.layoutOf(spec.id);
  const net = await prepareBootDiskAndNetwork(ctx, spec, image, diskSizeMb, undo);
  const r = newRunningRecord({
    ...spec,
    image: { name: image.name, rootfs: image.rootfs },
    net,
    token: randomBytes(16).toString("hex"),
    volumes: undefined,
  });
  writeBootConfig(r, spec, image.user, layout, image.runConfig, image.init, { template: true });
  writeBundle(r, layout, ctx);
  undo.push("cgroups", () => cgroups.remove(spec.id));
  const procs = cgroups.ensureUnified(spec.id);
  undo.push("runsc delete", () => ctx.killSandbox(spec.id));
  await runsc.run(spec.id, layout.bundle, { cgroupProcs: [procs], logFile: layout.log });
  await ctx.waitReady(r);
  rmSync(layout.bootConfig, { force: true });
  return r;
}
