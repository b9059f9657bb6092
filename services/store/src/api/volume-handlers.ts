import type { ServiceImpl } from "@connectrpc/connect";
import type { StoreService } from "@bhatti/proto";
import type { VolumeRegistry, VolumeWithAttachments } from "../domain/volumes.js";
import { toTimestamp } from "./convert.js";

type VolumeMethods = Pick<
  ServiceImpl<typeof StoreService>,
  | "createVolume"
  | "getVolume"
  | "listVolumes"
  | "updateVolume"
  | "deleteVolume"
  | "attachVolume"
  | "detachVolume"
>;

export const volumeToProto = (v: VolumeWithAttachments) => ({
  id: v.id,
  userId: v.user_id,
  name: v.name,
  sizeMb: v.size_mb,
  filePath: v.file_path,
  status: v.status,
  createdAt: toTimestamp(v.created_at),
  attachments: v.attachments.map((a) => ({
    volumeId: a.volume_id,
    sandboxId: a.sandbox_id,
    mount: a.mount,
    readOnly: a.read_only === 1,
    attachedAt: toTimestamp(a.attached_at),
  })),
});

export function createVolumeHandlers(volumes: VolumeRegistry): VolumeMethods {
  return {
    createVolume: (req) => ({
      volume: volumeToProto(
        volumes.create(req.userId, { name: req.name, sizeMb: req.sizeMb, filePath: req.filePath }),
      ),
    }),
    getVolume: (req) => ({ volume: volumeToProto(volumes.get(req.userId, req.volume)) }),
    listVolumes: (req) => ({ volumes: volumes.list(req.userId).map(volumeToProto) }),
    updateVolume(req) {
      const changes: { status?: string; sizeMb?: number; filePath?: string } = {};
      if (req.status !== undefined) changes.status = req.status;
      if (req.sizeMb !== undefined) changes.sizeMb = req.sizeMb;
      if (req.filePath !== undefined) changes.filePath = req.filePath;
      return { volume: volumeToProto(volumes.update(req.userId, req.volume, changes)) };
    },
    deleteVolume: (req) => ({ volume: volumeToProto(volumes.delete(req.userId, req.volume)) }),
    attachVolume: (req) => ({
      volume: volumeToProto(volumes.attach(req.userId, req.volume, req.sandbox, req.mount, req.readOnly)),
    }),
    detachVolume: (req) => ({ detached: volumes.detach(req.userId, req.volume, req.sandbox) }),
  };
}
