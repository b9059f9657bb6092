// `@bhatti/service-vmm/images`: pull, import and save of images as tasks, composed with an engine.
import type { Logger } from "@bhatti/runtime";
import { freeBytes } from "../adapters/loop-disk.js";
import type { GvisorEngine } from "../engines/gvisor/gvisor-engine.js";
import { createSkopeo } from "./adapters/skopeo.js";
import { createUmoci } from "./adapters/umoci.js";
import { describeTaskError } from "./api/image-handlers.js";
import { type ImageService, createImageService } from "./domain/image-service.js";
import { type ImageTaskBoard, createImageTaskBoard } from "./domain/image-tasks.js";

export { createImageHandlers, describeTaskError, taskToProto } from "./api/image-handlers.js";
export {
  type ImageCaller,
  type ImageService,
  ImageServiceError,
  type PullRequest,
  explainSkopeo,
  visibleTo,
} from "./domain/image-service.js";
export { type ImageTask, type ImageTaskBoard, TaskFailure } from "./domain/image-tasks.js";
export { injectAgentNeeds } from "./domain/rootfs-inject.js";
export { defaultImageName, isLoopbackRegistry, parseImageRef } from "./domain/image-ref.js";

export interface EngineImages {
  service: ImageService;
  tasks: ImageTaskBoard;
}

/** The image service of a gvisor engine: removes what a crash left in images/.tmp first. */
export function createEngineImages(
  engine: GvisorEngine,
  options: {
    taskTimeoutMs: number;
    logger?: Logger;
    historyLimit?: number;
    /** Free space kept on the images disk (host_disk_reserve_mb), MiB. */
    diskReserveMb?: number;
  },
): EngineImages {
  const log = options.logger ? (msg: string, f: object) => options.logger?.warn(msg, { ...f }) : undefined;
  const tasks = createImageTaskBoard({
    describe: describeTaskError,
    ...(log ? { log } : {}),
    ...(options.historyLimit === undefined ? {} : { historyLimit: options.historyLimit }),
  });
  const service = createImageService({
    registry: engine.images,
    tasks,
    skopeo: createSkopeo(),
    umoci: createUmoci(),
    sandboxes: {
      withFrozenRootfs: (id, fn) => engine.withFrozenRootfs(id, fn),
      imagesInUse: () => engine.list().map((s) => s.image),
    },
    taskTimeoutMs: options.taskTimeoutMs,
    diskReserveBytes: (options.diskReserveMb ?? 0) * 1024 * 1024,
    freeBytes,
    ...(log ? { log } : {}),
  });
  service.recover();
  return { service, tasks };
}
