import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type {
  ImageCaller as ImageCallerProto,
  ImageTask as ImageTaskProto,
  VmmImageService,
} from "@bhatti/proto";
import { requireSandboxId } from "@bhatti/runtime";
import { isEngineError } from "../../engine/engine-error.js";
import { ImageInputError } from "../domain/image-ref.js";
import { type ImageCaller, type ImageService, ImageServiceError } from "../domain/image-service.js";
import { type ImageTask, TaskFailure } from "../domain/image-tasks.js";

const CODES = {
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  permission_denied: Code.PermissionDenied,
  resource_exhausted: Code.ResourceExhausted,
  failed_precondition: Code.FailedPrecondition,
} as const;

/** The text a task's failure shows its user: ours as is, anything unexpected as "internal error". */
export function describeTaskError(e: unknown): string {
  if (e instanceof TaskFailure || e instanceof ImageServiceError || e instanceof ImageInputError)
    return e.message;
  if (isEngineError(e) && e.code !== "internal") return e.message;
  return "internal error (see the vmm log)";
}

function callerOf(c: ImageCallerProto | undefined): ImageCaller {
  if (!c || c.userId === "") throw new ConnectError("caller.user_id is required", Code.InvalidArgument);
  return { userId: c.userId, admin: c.admin, maxImages: c.maxImages };
}

export function taskToProto(t: ImageTask): Omit<ImageTaskProto, "$typeName" | "$unknown"> {
  return {
    id: t.id,
    kind: t.kind,
    state: t.state,
    phase: t.phase,
    bytesDone: BigInt(t.bytesDone),
    layersDone: t.layersDone,
    layersTotal: t.layersTotal,
    error: t.error,
    image: t.image,
    result: t.result,
    digest: t.digest,
    createdAt: timestampFromMs(t.createdAt),
    ...(t.finishedAt === undefined ? {} : { finishedAt: timestampFromMs(t.finishedAt) }),
  };
}

/** Domain errors to Connect codes, for the calls that answer at once (tasks report theirs). */
async function mapped<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ImageServiceError) throw new ConnectError(e.message, CODES[e.code]);
    if (e instanceof ImageInputError) throw new ConnectError(e.message, Code.InvalidArgument);
    throw e;
  }
}

/** VmmImageService: pull, import, save, delete, share, tasks (the caller comes from the gateway). */
export function createImageHandlers(images: ImageService): ServiceImpl<typeof VmmImageService> {
  return {
    pullImage: (req) =>
      mapped(() => {
        const r = req.request;
        const task = images.pull(callerOf(req.caller), {
          ref: r?.ref ?? "",
          name: r?.name ?? "",
          auth: r?.auth ?? "",
          platform: r?.platform ?? "",
          insecure: r?.insecure ?? false,
        });
        return { task: taskToProto(task) };
      }),
    importImage: (req) =>
      mapped(() => ({
        task: taskToProto(
          images.importTar(callerOf(req.caller), req.request?.path ?? "", req.request?.name ?? ""),
        ),
      })),
    saveImage: (req) =>
      mapped(() => ({
        task: taskToProto(
          images.save(
            callerOf(req.caller),
            requireSandboxId(req.request?.sandbox ?? ""),
            req.request?.name ?? "",
          ),
        ),
      })),
    deleteImage: (req) =>
      mapped(() => {
        images.remove(callerOf(req.caller), req.request?.name ?? "");
        return {};
      }),
    shareImage: (req) =>
      mapped(() => ({
        sharedWith: images.share(
          callerOf(req.caller),
          req.request?.name ?? "",
          req.request?.user ?? "",
          req.request?.unshare ?? false,
        ),
      })),
    async uploadImage(reqs) {
      const it = reqs[Symbol.asyncIterator]();
      const first = await it.next();
      if (first.done) throw new ConnectError("empty upload", Code.InvalidArgument);
      const head = first.value;
      async function* chunks(): AsyncIterable<Uint8Array> {
        for (;;) {
          const next = await it.next();
          if (next.done) return;
          yield next.value.chunk;
        }
      }
      return mapped(async () => ({
        task: taskToProto(
          await images.receiveUpload(callerOf(head.caller), head.name, Number(head.size), chunks()),
        ),
      }));
    },
    getTask: (req) =>
      mapped(() => ({ task: taskToProto(images.task(callerOf(req.caller), req.request?.id ?? "")) })),
  };
}
