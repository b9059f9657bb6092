import type { ServiceImpl } from "@connectrpc/connect";
import type { VmmVolumeService } from "@bhatti/proto";
import type { VolumeHost } from "./volume-host.js";

/**
 * VmmVolumeService: the image files of volumes. Validation and errors come from the VolumeHost
 * (EngineErrors, mapped by the vmm's engineErrorInterceptor like VmmService's).
 */
export function createVmmVolumeHandlers(volumes: VolumeHost): ServiceImpl<typeof VmmVolumeService> {
  return {
    createVolumeImage: async (req) => ({
      path: await volumes.createImage(req.userId, req.volumeId, req.sizeMb),
    }),
    async resizeVolumeImage(req) {
      await volumes.growImage(req.userId, req.volumeId, req.sizeMb);
      return {};
    },
    deleteVolumeImage: async (req) => ({ existed: await volumes.deleteImage(req.userId, req.volumeId) }),
  };
}
