import type { SandboxVolumeSpec, ThermalState } from "../engine/engine.js";
import type { VolumeHolder } from "./volume-host.js";

/**
 * The one place that says which sandboxes hold volume mounts. A sandbox's volumes are part of
 * its persisted spec (`GvisorSandboxRecord.volumes`); whatever (re)creates its container calls
 * `volumes.acquire(holderOf(record))` before `runsc run/restore` and `volumes.release(id)` once
 * the container is gone. Create, start (cold restore), adoption and snapshot resume all go
 * through here; the bundle's binds come from the same list (bundle.ts → volumeOciMounts).
 */

export interface SandboxWithVolumes {
  id: string;
  userId: string;
  thermal: ThermalState;
  volumes?: SandboxVolumeSpec[] | undefined;
}

export function holderOf(r: SandboxWithVolumes): VolumeHolder {
  return { id: r.id, userId: r.userId, volumes: r.volumes ?? [] };
}

/** Sandboxes whose container exists (hot or warm): they hold their volumes' host mounts. */
export function runningHolders(records: Iterable<SandboxWithVolumes>): VolumeHolder[] {
  const out: VolumeHolder[] = [];
  for (const r of records) if (r.thermal !== "cold" && (r.volumes?.length ?? 0) > 0) out.push(holderOf(r));
  return out;
}
