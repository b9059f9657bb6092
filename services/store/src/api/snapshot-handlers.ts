import type { ServiceImpl } from "@connectrpc/connect";
import type { StoreService } from "@bhatti/proto";
import type { SnapshotRegistry, SnapshotRow } from "../domain/snapshots.js";
import { toTimestamp } from "./convert.js";

type SnapshotMethods = Pick<
  ServiceImpl<typeof StoreService>,
  "createSnapshot" | "getSnapshot" | "listSnapshots" | "deleteSnapshot"
>;

export const snapshotToProto = (s: SnapshotRow) => ({
  id: s.id,
  userId: s.user_id,
  name: s.name,
  sourceSandboxId: s.source_sandbox_id,
  path: s.path,
  manifestJson: s.manifest,
  sizeMb: s.size_mb,
  createdAt: toTimestamp(s.created_at),
});

export function createSnapshotHandlers(snapshots: SnapshotRegistry): SnapshotMethods {
  return {
    createSnapshot: (req) => ({
      snapshot: snapshotToProto(
        snapshots.create(req.userId, {
          name: req.name,
          sourceSandboxId: req.sourceSandboxId,
          path: req.path,
          manifestJson: req.manifestJson,
          sizeMb: req.sizeMb,
        }),
      ),
    }),
    getSnapshot: (req) => ({ snapshot: snapshotToProto(snapshots.get(req.userId, req.snapshot)) }),
    listSnapshots: (req) => ({ snapshots: snapshots.list(req.userId).map(snapshotToProto) }),
    deleteSnapshot: (req) => ({ snapshot: snapshotToProto(snapshots.delete(req.userId, req.snapshot)) }),
  };
}
