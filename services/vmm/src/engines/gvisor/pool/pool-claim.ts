import type { SandboxSpec } from "../../../engine/engine.js";
import { writeBundle } from "../bundle.js";
import type { GvisorContext } from "../engine-context.js";
import { type GvisorSandboxRecord, newRunningRecord, writeRecord } from "../sandbox-record.js";
import { claimRestored } from "../templates/template-claim.js";
import type { PoolEntry } from "./ready-pool.js";

/**
 * Makes a pool entry sandbox `spec.id` (the entry's own id, reserved for this create): thawed,
 * its name files and bundle rewritten for the new name, its agent claimed (new token, hostname,
 * env, secrets, files), its resolver name set, its record written. On failure the caller tears
 * the entry down: it has half-taken a user's identity and is never put back.
 */
export async function claimPoolEntry(
  ctx: GvisorContext,
  entry: PoolEntry,
  spec: SandboxSpec,
): Promise<{ record: GvisorSandboxRecord; detail: string }> {
  const t0 = performance.now();
  const layout = ctx.layoutOf(spec.id);
  const e = entry.record;
  const r = newRunningRecord({
    ...spec,
    image: { name: e.image, rootfs: e.imageRootfs },
    net: {
      address: e.address,
      gateway: e.gateway,
      dnsServer: e.dnsServer ?? e.gateway,
      netnsPath: e.netnsPath,
    },
    volumes: undefined,
  });
  // The guest reads /etc/hosts from this file (a bind the gofer re-reads): same address, new name.
  writeBundle(r, layout, ctx);
  await ctx.cgroups.thaw(spec.id);
  const tThawed = performance.now();
  await Promise.all([
    claimRestored(ctx, r, entry.templateToken, spec),
    ctx.options.network.rename(spec.id, spec.name),
  ]);
  const tClaimed = performance.now();
  writeRecord(layout.record, r);
  return {
    record: r,
    detail: `from pool (template ${entry.image}/${entry.templateKey}): thaw ${(tThawed - t0).toFixed(1)} ms, claim ${(tClaimed - tThawed).toFixed(0)} ms`,
  };
}
