import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { StoreService } from "@bhatti/proto";
import type { ImageCatalog, ImageRow } from "../domain/images.js";
import { toTimestamp } from "./convert.js";

type ImageMethods = Pick<
  ServiceImpl<typeof StoreService>,
  "createImage" | "getImage" | "listImages" | "deleteImage"
>;

export const imageToProto = (i: ImageRow) => ({
  id: i.id,
  userId: i.user_id ?? "",
  name: i.name,
  source: i.source,
  filePath: i.file_path,
  sizeMb: i.size_mb,
  ociDigest: i.oci_digest,
  ociConfigJson: i.oci_config,
  createdAt: toTimestamp(i.created_at),
});

/** `system` and `user_id` are exclusive: a system image belongs to nobody. */
function ownerOf(userId: string, system: boolean): string | undefined {
  if (system === (userId !== "")) {
    throw new ConnectError("give either user_id or system, not both or neither", Code.InvalidArgument);
  }
  return system ? undefined : userId;
}

export function createImageHandlers(images: ImageCatalog): ImageMethods {
  return {
    createImage: (req) => ({
      image: imageToProto(
        images.create(ownerOf(req.userId, req.system), {
          name: req.name,
          source: req.source,
          filePath: req.filePath,
          sizeMb: req.sizeMb,
          ociDigest: req.ociDigest,
          ociConfigJson: req.ociConfigJson,
        }),
      ),
    }),
    getImage: (req) => ({ image: imageToProto(images.get(req.userId, req.image)) }),
    listImages: (req) => ({ images: images.list(req.userId).map(imageToProto) }),
    deleteImage: (req) => ({
      image: imageToProto(images.delete(ownerOf(req.userId, req.system), req.image)),
    }),
  };
}
