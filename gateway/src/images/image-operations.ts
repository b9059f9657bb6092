import type {
  ImageCaller,
  ImageServiceImportImageRequest,
  ImageServicePullImageRequest,
  ImageServiceShareImageRequest,
  ImageTask,
} from "@bhatti/proto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ImageCallerSchema } from "@bhatti/proto";
import type { AuthenticatedUser } from "../auth/authenticated-user.js";
import type { GatewayContext } from "../gateway-context.js";

type Init<T> = Omit<T, "$typeName" | "$unknown">;

/**
 * Image operations shared by REST and Connect: the caller the vmm checks against (owner, admin,
 * max_images), and sandbox names resolved to ids for a save.
 */
export interface ImageOperations {
  pull(user: AuthenticatedUser, req: Init<ImageServicePullImageRequest>): Promise<ImageTask>;
  importTar(user: AuthenticatedUser, req: Init<ImageServiceImportImageRequest>): Promise<ImageTask>;
  /** Streams an uploaded tar of `size` bytes to the vmm, which imports it. */
  upload(
    user: AuthenticatedUser,
    name: string,
    size: number,
    body: AsyncIterable<Uint8Array>,
    signal: AbortSignal,
  ): Promise<ImageTask>;
  save(user: AuthenticatedUser, sandbox: string, name: string): Promise<ImageTask>;
  remove(user: AuthenticatedUser, name: string): Promise<void>;
  share(user: AuthenticatedUser, req: Init<ImageServiceShareImageRequest>): Promise<string[]>;
  task(user: AuthenticatedUser, id: string): Promise<ImageTask>;
}

export function imageCaller(user: AuthenticatedUser): MessageInitShape<typeof ImageCallerSchema> {
  return { userId: user.id, admin: user.isAdmin, maxImages: user.record.limits?.maxImages ?? 0 };
}

const need = (t: ImageTask | undefined): ImageTask => {
  if (t === undefined) throw new ConnectError("the vmm returned no task", Code.Internal);
  return t;
};

export function createImageOperations(gw: GatewayContext): ImageOperations {
  const images = gw.clients.vmmImages;
  return {
    pull: async (user, request) =>
      need((await images.pullImage({ caller: imageCaller(user), request })).task),
    importTar: async (user, request) => {
      if (!user.isAdmin)
        throw new ConnectError("importing from a server path needs an admin key", Code.PermissionDenied);
      return need((await images.importImage({ caller: imageCaller(user), request })).task);
    },
    async upload(user, name, size, body, signal) {
      async function* messages() {
        yield { caller: imageCaller(user), name, size: BigInt(size) };
        for await (const chunk of body) yield { chunk };
      }
      // The whole upload is one call: bounded by the task limit, not rpc_timeout.
      const res = await images.uploadImage(messages(), { signal, timeoutMs: gw.config.image_task_timeout });
      return need(res.task);
    },
    async save(user, sandbox, name) {
      const id = await gw.runtime.sandboxes.resolveId(user, sandbox);
      return need(
        (await images.saveImage({ caller: imageCaller(user), request: { sandbox: id, name } })).task,
      );
    },
    async remove(user, name) {
      await images.deleteImage({ caller: imageCaller(user), request: { name } });
    },
    async share(user, request) {
      // Shares are kept by user id. Only an admin may look other users up, so others give the id.
      let target = request.user;
      if (user.isAdmin && !/^[0-9a-f]{16}$/.test(target)) {
        const { user: found } = await gw.clients.store.getUser({ actingUserId: user.id, user: target });
        target = found?.id ?? target;
      }
      return (await images.shareImage({ caller: imageCaller(user), request: { ...request, user: target } }))
        .sharedWith;
    },
    task: async (user, id) =>
      need((await images.getTask({ caller: imageCaller(user), request: { id } })).task),
  };
}

export type { ImageCaller };
