import { randomBytes } from "node:crypto";

export type ImageTaskKind = "image_pull" | "image_import" | "image_save";
export type ImageTaskState = "running" | "completed" | "failed";

export interface ImageTask {
  id: string;
  kind: ImageTaskKind;
  userId: string;
  state: ImageTaskState;
  phase: string;
  bytesDone: number;
  layersDone: number;
  layersTotal: number;
  error: string;
  image: string;
  result: string;
  digest: string;
  createdAt: number;
  finishedAt: number | undefined;
}

/** Thrown by a task's work for a failure the user should read as is (not an internal error). */
export class TaskFailure extends Error {
  override readonly name = "TaskFailure";
}

/**
 * Tasks live in the vmm's memory: a restart forgets them (a pull interrupted by a crash leaves no
 * image, see image-service). Finished tasks are kept until `historyLimit` newer ones finished.
 */
export interface ImageTaskBoard {
  start(
    kind: ImageTaskKind,
    userId: string,
    image: string,
    work: (task: ImageTask) => Promise<void>,
  ): ImageTask;
  /** A task that is already finished (a no-op pull). */
  finished(kind: ImageTaskKind, userId: string, image: string, result: string, digest: string): ImageTask;
  get(id: string): ImageTask | undefined;
  /** Resolves when the task finished (tests, benches). */
  settled(id: string): Promise<ImageTask>;
  running(): ImageTask[];
}

export interface ImageTaskBoardOptions {
  historyLimit?: number;
  log?: (msg: string, fields: object) => void;
  /** The error text a user sees; anything unexpected should say only "internal error". */
  describe?: (e: unknown) => string;
}

export function createImageTaskBoard(options: ImageTaskBoardOptions = {}): ImageTaskBoard {
  const limit = options.historyLimit ?? 200;
  const tasks = new Map<string, ImageTask>();
  const done = new Map<string, Promise<ImageTask>>();
  const finishedOrder: string[] = [];
  const retire = (t: ImageTask) => {
    t.finishedAt = Date.now();
    finishedOrder.push(t.id);
    while (finishedOrder.length > limit) {
      const old = finishedOrder.shift();
      if (old !== undefined) {
        tasks.delete(old);
        done.delete(old);
      }
    }
  };
  const make = (kind: ImageTaskKind, userId: string, image: string): ImageTask => ({
    id: randomBytes(8).toString("hex"),
    kind,
    userId,
    state: "running",
    phase: "queued",
    bytesDone: 0,
    layersDone: 0,
    layersTotal: 0,
    error: "",
    image,
    result: "",
    digest: "",
    createdAt: Date.now(),
    finishedAt: undefined,
  });
  return {
    start(kind, userId, image, work) {
      const t = make(kind, userId, image);
      tasks.set(t.id, t);
      const p = (async () => {
        try {
          await work(t);
          t.state = "completed";
          t.phase = "done";
        } catch (e) {
          t.state = "failed";
          t.error = options.describe ? options.describe(e) : (e as Error).message || String(e);
          options.log?.("image task failed", { task: t.id, kind, image, error: (e as Error).message });
        }
        retire(t);
        return t;
      })();
      done.set(t.id, p);
      return t;
    },
    finished(kind, userId, image, result, digest) {
      const t = make(kind, userId, image);
      Object.assign(t, { state: "completed", phase: "done", result, digest });
      tasks.set(t.id, t);
      done.set(t.id, Promise.resolve(t));
      retire(t);
      return t;
    },
    get: (id) => tasks.get(id),
    settled: (id) => done.get(id) ?? Promise.reject(new Error(`task ${id} not found`)),
    running: () => [...tasks.values()].filter((t) => t.state === "running"),
  };
}
