import type { ServiceImpl } from "@connectrpc/connect";
import type { VmmSnapshotService, VmmVolumeMount } from "@bhatti/proto";
import { requireSandboxId } from "@bhatti/runtime";
import type { SandboxVolumeSpec } from "../../engine/engine.js";
import type { SnapshotOps } from "../../engines/gvisor/snapshots/snapshot-ops.js";
import { infoToProto } from "../proto-mapping.js";

const volumesOf = (volumes: readonly VmmVolumeMount[]): SandboxVolumeSpec[] =>
  volumes.map((v) => ({ volumeId: v.volumeId, name: v.name, mount: v.mount, readOnly: v.readOnly }));

/** VmmSnapshotService: thin translation to the engine's snapshot operations (errors: engineErrorInterceptor). */
export function createVmmSnapshotHandlers(snapshots: SnapshotOps): ServiceImpl<typeof VmmSnapshotService> {
  return {
    async createSnapshot(req) {
      const c = await snapshots.create(
        requireSandboxId(req.sandboxId),
        req.userId,
        req.fsOnly ? "filesystem" : "full",
      );
      return {
        snapshotId: c.snapshotId,
        path: c.path,
        kind: c.manifest.kind,
        sizeBytes: BigInt(c.manifest.sizeBytes),
        pausedMs: Math.round(c.pausedMs),
        totalMs: Math.round(c.totalMs),
        // The agent token stays in the vmm's files: the store row never holds it.
        manifestJson: JSON.stringify({ ...c.manifest, token: undefined }),
      };
    },
    resumeSnapshot: async (req) => ({
      sandbox: infoToProto(
        await snapshots.resumeNew(req.userId, req.snapshotId, {
          id: requireSandboxId(req.sandboxId),
          name: req.sandboxName,
          userId: req.userId,
          volumes: volumesOf(req.volumes),
        }),
      ),
    }),
    rewindSandbox: async (req) => ({
      sandbox: infoToProto(
        await snapshots.rewind(
          req.userId,
          req.snapshotId,
          requireSandboxId(req.sandboxId),
          volumesOf(req.volumes),
        ),
      ),
    }),
    deleteSnapshot: (req) => ({ existed: snapshots.remove(req.userId, req.snapshotId) }),
  };
}
