import type { MessageInitShape } from "@bufbuild/protobuf";
import type { VmmVolumeMountSchema, VolumeRecord } from "@bhatti/proto";
import type { Logger } from "@bhatti/runtime";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceClients } from "../service-clients.js";
import type { VolumeOperations } from "../volumes/volume-operations.js";

/**
 * A snapshot's volumes on resume. The manifest records them by name and mount point; a memory
 * image fixes the set of mount points (runsc cannot restore it with one left out or added), so a
 * resume attaches the caller's volumes of those names at those points, in the store first (the
 * store is what refuses a delete while attached), and the vmm checks them against its copy of
 * the manifest before it acquires their host mounts.
 */

export interface RecordedVolume {
  name: string;
  mount: string;
  readOnly: boolean;
}

type VmmMount = MessageInitShape<typeof VmmVolumeMountSchema>;

/** `manifest.volumes` as the store row keeps it (absent or malformed: none). */
export function recordedVolumes(manifest: { volumes?: unknown }): RecordedVolume[] {
  if (!Array.isArray(manifest.volumes)) return [];
  return manifest.volumes.flatMap((v: unknown) => {
    const o = v as Partial<Record<keyof RecordedVolume, unknown>> | null;
    return o !== null && typeof o?.name === "string" && typeof o.mount === "string"
      ? [{ name: o.name, mount: o.mount, readOnly: o.readOnly === true }]
      : [];
  });
}

const list = (vs: readonly RecordedVolume[]) =>
  vs.map((v) => `${v.name} at ${v.mount}${v.readOnly ? " (ro)" : ""}`).join(", ");

/** FailedPrecondition naming the snapshot's volumes the user no longer has. */
function refuseMissing(snapshotName: string, missing: readonly RecordedVolume[]): never {
  throw new ConnectError(
    `snapshot ${snapshotName} was taken with volume(s) ${list(missing)}, which no longer exist; a snapshot's volume mount points are fixed when it is taken, so create volume(s) with those names to resume it`,
    Code.FailedPrecondition,
  );
}

export function createSnapshotVolumes(deps: {
  clients: Pick<ServiceClients, "store">;
  volumes: Pick<VolumeOperations, "attachForCreate">;
  logger: Logger;
}) {
  const { store } = deps.clients;

  const userVolumes = async (userId: string) => (await store.listVolumes({ userId })).volumes;

  const checkPresent = (snapshotName: string, recorded: readonly RecordedVolume[], have: VolumeRecord[]) => {
    const names = new Set(have.map((v) => v.name));
    const missing = recorded.filter((r) => !names.has(r.name));
    if (missing.length > 0) refuseMissing(snapshotName, missing);
  };

  /** A store NotFound during the attach (the volume was deleted meanwhile) said the same way. */
  const notFoundAsMissing = (snapshotName: string, r: RecordedVolume, e: unknown): never => {
    if (ConnectError.from(e).code === Code.NotFound) refuseMissing(snapshotName, [r]);
    throw e;
  };

  return {
    /** Refuses (FailedPrecondition naming them) before anything is created when volumes are missing. */
    async checkPresent(userId: string, snapshotName: string, recorded: readonly RecordedVolume[]) {
      if (recorded.length > 0) checkPresent(snapshotName, recorded, await userVolumes(userId));
    },

    /**
     * Attaches the snapshot's volumes to a new sandbox (its row exists; deleting the row drops
     * the attachments again) and returns what the vmm mounts.
     */
    async attachToNew(
      userId: string,
      snapshotName: string,
      sandboxId: string,
      recorded: readonly RecordedVolume[],
    ): Promise<VmmMount[]> {
      const out: VmmMount[] = [];
      for (const r of recorded) {
        const attached = await deps.volumes
          .attachForCreate(userId, sandboxId, [r])
          .catch((e: unknown) => notFoundAsMissing(snapshotName, r, e));
        out.push(...attached);
      }
      return out;
    },

    /**
     * Makes an existing sandbox's attachments the snapshot's (a rewind): attachments the
     * snapshot does not have are detached, the snapshot's are attached. Returns what the vmm
     * mounts and `undo`, which puts the sandbox's own attachments back when the rewind fails.
     */
    async replaceAttachments(
      userId: string,
      snapshotName: string,
      sandboxId: string,
      recorded: readonly RecordedVolume[],
    ): Promise<{ mounts: VmmMount[]; undo: () => Promise<void> }> {
      const have = await userVolumes(userId);
      checkPresent(snapshotName, recorded, have);
      const current = have.flatMap((v) =>
        v.attachments
          .filter((a) => a.sandboxId === sandboxId)
          .map((a) => ({ volume: v, own: { name: v.name, mount: a.mount, readOnly: a.readOnly } })),
      );
      const same = (a: RecordedVolume, b: RecordedVolume) =>
        a.name === b.name && a.mount === b.mount && a.readOnly === b.readOnly;
      const toDetach = current.filter((c) => !recorded.some((r) => same(r, c.own)));
      const toAttach = recorded.filter((r) => !current.some((c) => same(r, c.own)));
      const undoSteps: (() => Promise<unknown>)[] = [];
      const undo = async () => {
        for (const step of undoSteps.reverse()) {
          await step().catch((e: unknown) =>
            deps.logger.error("rewind: restoring a volume attachment failed", {
              sandbox_id: sandboxId,
              error: e,
            }),
          );
        }
        undoSteps.length = 0;
      };
      const ids = new Map(current.map((c) => [c.own.name, c.volume.id]));
      try {
        // Detached first: the snapshot may put another volume at the same mount point.
        for (const c of toDetach) {
          await store.detachVolume({ userId, volume: c.volume.id, sandbox: sandboxId });
          undoSteps.push(() =>
            store.attachVolume({
              userId,
              volume: c.volume.id,
              sandbox: sandboxId,
              mount: c.own.mount,
              readOnly: c.own.readOnly,
            }),
          );
        }
        for (const r of toAttach) {
          const { volume } = await store
            .attachVolume({
              userId,
              volume: r.name,
              sandbox: sandboxId,
              mount: r.mount,
              readOnly: r.readOnly,
            })
            .catch((e: unknown) => notFoundAsMissing(snapshotName, r, e));
          if (volume === undefined) throw new ConnectError("store returned no volume", Code.Internal);
          ids.set(r.name, volume.id);
          undoSteps.push(() => store.detachVolume({ userId, volume: volume.id, sandbox: sandboxId }));
        }
      } catch (e) {
        await undo();
        throw e;
      }
      const mounts = recorded.map((r) => ({
        volumeId: ids.get(r.name) ?? "",
        name: r.name,
        mount: r.mount,
        readOnly: r.readOnly,
      }));
      return { mounts, undo };
    },
  };
}

export type SnapshotVolumes = ReturnType<typeof createSnapshotVolumes>;
