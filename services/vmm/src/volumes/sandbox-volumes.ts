import { isSandboxId } from "@bhatti/proto";
import type { SandboxVolumeSpec, ThermalState } from "../engine/engine.js";
import { EngineError } from "../engine/engine-error.js";
import type { VolumeHolder } from "./volume-host.js";

/**
 * The one place that says which sandboxes hold volume mounts. A sandbox's volumes are part of
 * its persisted spec (`GvisorSandboxRecord.volumes`); whatever (re)creates its container calls
 * `volumes.acquire(holderOf(record))` before `runsc run/restore` and `volumes.release(id)` once
 * the container is gone. Create, start (cold restore), adoption and snapshot resume all go
 * through here; the bundle's binds come from the same list (bundle.ts → volumeOciMounts).
 *
 * Snapshot resume: the manifest records the volumes by name and mount; the gateway attaches the
 * caller's volumes of those names to the new sandbox in the store (VolumeOperations.attachForCreate,
 * which also gives their ids), the vmm checks them with `volumesForRestore`, puts the result in
 * the new record's `volumes`, and acquires them before `runsc restore`.
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

/** A volume as a snapshot manifest records it (by name: volume ids are not stable across a re-create). */
export interface RecordedVolumeMount {
  name: string;
  mount: string;
  readOnly: boolean;
}

/**
 * The volumes of a sandbox restored from a memory checkpoint (snapshot resume or rewind): the
 * checkpoint fixed the set of mount destinations (a restore with one left out or added fails in
 * runsc), so `resolved` (the caller's volumes found by name, with their ids) must cover exactly
 * the recorded mount points. Throws failed_precondition naming what is missing or extra.
 */
export function volumesForRestore(
  recorded: readonly RecordedVolumeMount[],
  resolved: readonly SandboxVolumeSpec[],
): SandboxVolumeSpec[] {
  const byMount = new Map(resolved.map((v) => [v.mount, v]));
  const missing = recorded.filter((r) => byMount.get(r.mount)?.name !== r.name);
  const recordedMounts = new Set(recorded.map((r) => r.mount));
  const extra = resolved.filter((v) => !recordedMounts.has(v.mount));
  if (missing.length > 0 || extra.length > 0) {
    const parts = [
      ...(missing.length > 0
        ? [`missing volume(s) ${missing.map((m) => `${m.name} at ${m.mount}`).join(", ")}`]
        : []),
      ...(extra.length > 0
        ? [`volume(s) not in the snapshot ${extra.map((v) => `${v.name} at ${v.mount}`).join(", ")}`]
        : []),
    ];
    throw new EngineError(
      "failed_precondition",
      `the snapshot's volume mounts are fixed by its memory image: ${parts.join("; ")}`,
    );
  }
  // Read-only as recorded: the guest's mount flags live in the checkpoint too.
  return recorded.map((r) => {
    const v = byMount.get(r.mount) as SandboxVolumeSpec;
    if (!isSandboxId(v.volumeId)) {
      throw new EngineError("invalid_argument", `volume id "${v.volumeId.slice(0, 40)}" is invalid`);
    }
    return { volumeId: v.volumeId, name: v.name, mount: r.mount, readOnly: r.readOnly };
  });
}
