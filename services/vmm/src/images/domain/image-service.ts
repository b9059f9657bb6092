import { randomBytes } from "node:crypto";
import { once } from "node:events";
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { crashPoint } from "@bhatti/runtime";
import type { ImageRecord, ImageRegistry, ImageRunConfig } from "../../adapters/image-registry.js";
import { dirBytes } from "../../engines/gvisor/disk.js";
import { readLayoutImage } from "../adapters/oci-layout.js";
import type { ImageSource, Skopeo } from "../adapters/skopeo.js";
import { ToolError, runTool } from "../adapters/tool-process.js";
import type { Umoci } from "../adapters/umoci.js";
import {
  ImageInputError,
  checkImageName,
  defaultImageName,
  isLoopbackRegistry,
  parseImageRef,
  parsePlatform,
} from "./image-ref.js";
import { type ImageTask, type ImageTaskBoard, type ImageTaskKind, TaskFailure } from "./image-tasks.js";
import { injectAgentNeeds } from "./rootfs-inject.js";

/** Who asks (authenticated by the gateway). */
export interface ImageCaller {
  userId: string;
  admin: boolean;
  /** 0 = no limit. */
  maxImages: number;
}

/** Errors the api layer maps to Connect codes. */
export class ImageServiceError extends Error {
  override readonly name = "ImageServiceError";
  constructor(
    readonly code:
      | "not_found"
      | "already_exists"
      | "permission_denied"
      | "resource_exhausted"
      | "failed_precondition",
    message: string,
  ) {
    super(message);
  }
}

/** The engine's side of a save and of "in use". */
export interface SandboxSource {
  withFrozenRootfs<T>(
    id: string,
    fn: (view: { rootfs: string; image: string; userId: string }) => Promise<T>,
  ): Promise<T>;
  /** Image names of the sandboxes that exist (any state). */
  imagesInUse(): string[];
}

export interface ImageServiceOptions {
  registry: ImageRegistry;
  tasks: ImageTaskBoard;
  skopeo: Skopeo;
  umoci: Umoci;
  sandboxes: SandboxSource;
  /** A pull, import or save is killed after this long. */
  taskTimeoutMs: number;
  /** Tasks that run at once (the others wait, phase "queued"); default 2. */
  maxConcurrent?: number;
  /** Free space left on the images disk after a task (host_disk_reserve_mb); default 0. */
  diskReserveBytes?: number;
  /** Free bytes of the filesystem holding `path` (statfs). */
  freeBytes?: (path: string) => number;
  log?: (msg: string, fields: object) => void;
}

export interface PullRequest {
  ref: string;
  name: string;
  auth: string;
  platform: string;
  insecure: boolean;
}

/** A visible image (own, shared with the user, or system). */
export function visibleTo(image: ImageRecord, userId: string): boolean {
  return userId === "" || image.owner === "" || image.owner === userId || image.sharedWith.includes(userId);
}

/** Turns skopeo's stderr into what the user needs to read (no dump of its internals). */
export function explainSkopeo(e: unknown, ref: string, withCreds: boolean): Error {
  if (!(e instanceof ToolError)) return e as Error;
  const s = e.stderr;
  if (/unauthorized|authentication required|\b401\b|incorrect username or password/i.test(s)) {
    return new TaskFailure(
      withCreds
        ? `the registry refused the credentials for ${ref} (401 unauthorized)`
        : `the registry requires credentials for ${ref} (401 unauthorized): pass --auth user:token`,
    );
  }
  if (/denied|\b403\b/i.test(s))
    return new TaskFailure(`the registry denied access to ${ref} (403 forbidden)`);
  if (/manifest unknown|name unknown|not found|\b404\b/i.test(s)) {
    return new TaskFailure(`image ${ref} not found in the registry`);
  }
  if (/digest did not match/i.test(s)) {
    return new TaskFailure(
      `a blob of ${ref} did not match its digest (corrupt or tampered data); nothing was kept`,
    );
  }
  if (/no image found in (image index|manifest list) for architecture|choosing image instance/i.test(s)) {
    return new TaskFailure(`${ref} has no image for the requested platform`);
  }
  if (/server gave HTTP response to HTTPS client/i.test(s)) {
    return new TaskFailure(`the registry of ${ref} speaks plain HTTP: pass --insecure to allow it`);
  }
  if (/connection refused|no such host|i\/o timeout|network is unreachable|dial tcp/i.test(s)) {
    return new TaskFailure(`cannot reach the registry of ${ref}`);
  }
  const last =
    s
      .split("\n")
      .filter((l) => l.trim() !== "")
      .pop() ?? "";
  return new TaskFailure(
    `pulling ${ref} failed: ${last.replace(/^time=".*?" level=\w+ msg=/, "").slice(0, 300)}`,
  );
}

/**
 * Pull, import and save, each a task that builds `images/.tmp/<task>/image/{rootfs,image.json}`
 * and renames it to `images/<name>` only when complete (image.json last), so the registry never
 * sees half an image; what a crash leaves in `.tmp` is removed at start (`recover`).
 */
export interface ImageService {
  recover(): void;
  pull(caller: ImageCaller, req: PullRequest): ImageTask;
  importTar(caller: ImageCaller, path: string, name: string): ImageTask;
  /**
   * Receives an uploaded tar (exactly `size` bytes) into images/.tmp, then imports it like
   * importTar (any user: it is their data) and deletes it when the task ends.
   */
  receiveUpload(
    caller: ImageCaller,
    name: string,
    size: number,
    chunks: AsyncIterable<Uint8Array>,
  ): Promise<ImageTask>;
  save(caller: ImageCaller, sandboxId: string, name: string): ImageTask;
  remove(caller: ImageCaller, name: string): void;
  share(caller: ImageCaller, name: string, user: string, unshare: boolean): string[];
  task(caller: ImageCaller, id: string): ImageTask;
  list(userId: string): ImageRecord[];
}

interface Inflight {
  key: string;
  task: ImageTask;
  userId: string;
  isNew: boolean;
}

export function createImageService(o: ImageServiceOptions): ImageService {
  const { registry, tasks } = o;
  const tmpRoot = join(registry.dir, ".tmp");
  /** Per image name: the task that is building it. */
  const inflight = new Map<string, Inflight>();
  // skopeo, umoci and cp are CPU and disk heavy: a few at a time, the rest queued in order.
  const maxConcurrent = o.maxConcurrent ?? 2;
  let active = 0;
  const waiting: (() => void)[] = [];
  const acquire = async () => {
    if (active < maxConcurrent) {
      active++;
      return;
    }
    await new Promise<void>((resolve) => waiting.push(resolve));
  };
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else active--;
  };
  /** Refuses to go on when `needBytes` more would eat into the reserve. */
  const checkDisk = (needBytes: number, what: string) => {
    if (!o.freeBytes) return;
    const free = o.freeBytes(registry.dir);
    const reserve = o.diskReserveBytes ?? 0;
    if (free - needBytes < reserve) {
      const mb = (n: number) => `${Math.ceil(n / 1024 / 1024)} MB`;
      throw new TaskFailure(
        `not enough disk space for ${what}: ${mb(free)} free, about ${mb(needBytes)} needed, ${mb(reserve)} kept free (host_disk_reserve_mb)`,
      );
    }
  };

  const ownedCount = (userId: string) =>
    registry.list().filter((i) => i.owner === userId).length +
    [...inflight.values()].filter((f) => f.userId === userId && f.isNew).length;

  /** The checks every new or replaced image passes before its task starts. */
  const admit = (
    caller: ImageCaller,
    name: string,
    key: string,
  ): { existing: ImageRecord | undefined } | Inflight => {
    checkImageName(name);
    const busy = inflight.get(name);
    if (busy) {
      if (busy.key === key && busy.userId === caller.userId) return busy;
      throw new ImageServiceError(
        "already_exists",
        `image ${name} is being built by another task (${busy.task.id})`,
      );
    }
    const existing = registry.get(name);
    if (existing && existing.owner !== caller.userId) {
      throw new ImageServiceError("already_exists", `image ${name} already exists`);
    }
    if (!existing && caller.maxImages > 0 && ownedCount(caller.userId) >= caller.maxImages) {
      throw new ImageServiceError(
        "resource_exhausted",
        `image limit reached (${ownedCount(caller.userId)}/${caller.maxImages})`,
      );
    }
    return { existing };
  };

  const inUse = (name: string) => o.sandboxes.imagesInUse().filter((n) => n === name).length;

  /** Runs `build` in a fresh work dir; publishes `<work>/image` as images/<name>. */
  const startBuild = (
    kind: ImageTaskKind,
    caller: ImageCaller,
    name: string,
    key: string,
    existing: ImageRecord | undefined,
    build: (t: ImageTask, work: string, signal: AbortSignal) => Promise<ImageMeta | "exists">,
  ): ImageTask => {
    const entry: Inflight = {
      key,
      userId: caller.userId,
      isNew: existing === undefined,
      task: undefined as never,
    };
    // Registered before the work starts: its `finally` may run before start() returns.
    inflight.set(name, entry);
    entry.task = tasks.start(kind, caller.userId, name, async (t) => {
      const work = join(tmpRoot, t.id);
      await acquire();
      // The time limit counts from the start of the work, not the wait in the queue.
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), o.taskTimeoutMs);
      try {
        mkdirSync(join(work, "image"), { recursive: true, mode: 0o700 });
        const meta = await build(t, work, abort.signal);
        if (meta === "exists") {
          t.result = "exists";
          return;
        }
        if (registry.get(name) !== undefined && inUse(name) > 0) {
          throw new ImageServiceError(
            "failed_precondition",
            `image ${name} is used by ${inUse(name)} sandbox(es); destroy them or use another name`,
          );
        }
        t.phase = "publishing";
        const rootfs = join(work, "image", "rootfs");
        const sizeBytes = dirBytes(rootfs);
        const json = {
          name,
          description: meta.description,
          user: meta.user,
          size_bytes: sizeBytes,
          built_at: new Date().toISOString(),
          source: meta.source,
          owner: caller.userId,
          shared_with: existing?.sharedWith ?? [],
          digest: meta.digest,
          config: {
            env: meta.config.env,
            cmd: meta.config.cmd,
            entrypoint: meta.config.entrypoint,
            working_dir: meta.config.workingDir,
            user: meta.config.user,
          },
        };
        // image.json last: the registry lists only complete images.
        writeFileSync(join(work, "image", "image.json"), `${JSON.stringify(json, null, 2)}\n`);
        crashPoint("vmm.image.before-publish");
        const final = join(registry.dir, name);
        if (existsSync(final)) renameSync(final, join(work, "replaced"));
        renameSync(join(work, "image"), final);
        t.bytesDone = sizeBytes;
        t.result = RESULTS[kind];
      } finally {
        release();
        clearTimeout(timer);
        if (inflight.get(name) === entry) inflight.delete(name);
        rmSync(work, { recursive: true, force: true });
      }
    });
    return entry.task;
  };

  return {
    recover() {
      rmSync(tmpRoot, { recursive: true, force: true });
      mkdirSync(tmpRoot, { recursive: true, mode: 0o700 });
    },

    pull(caller, req) {
      const parsed = parseImageRef(req.ref);
      const platform = parsePlatform(req.platform);
      const name = req.name === "" ? defaultImageName(parsed) : req.name;
      if (req.auth !== "" && !/^[^:\s]+:\S+$/.test(req.auth)) {
        throw new ImageInputError("auth must be user:token");
      }
      const key = `pull ${req.ref} ${req.platform}`;
      const admitted = admit(caller, name, key);
      if ("task" in admitted) return admitted.task;
      const { existing } = admitted;
      const source: ImageSource = {
        kind: "registry",
        ref: req.ref,
        registry: parsed.registry,
        tlsVerify: !(req.insecure || isLoopbackRegistry(parsed.registry)),
        ...(req.auth === "" ? {} : { creds: req.auth }),
        ...(platform === undefined ? {} : { platform }),
      };
      const sourceText = `oci:${req.ref}`;
      return startBuild("image_pull", caller, name, key, existing, async (t, work, signal) => {
        t.phase = "resolving";
        let remote: { digest: string; layers: number };
        try {
          remote = await o.skopeo.inspect(source, { signal, timeoutMs: o.taskTimeoutMs });
        } catch (e) {
          throw explainSkopeo(e, req.ref, req.auth !== "");
        }
        t.digest = remote.digest;
        t.layersTotal = remote.layers;
        const digestKey = `${remote.digest}${req.platform === "" ? "" : ` ${req.platform}`}`;
        if (existing && existing.digest === digestKey && existing.source === sourceText) return "exists";
        return fetchAndUnpack(t, work, signal, source, req.ref, req.auth !== "", sourceText, digestKey);
      });
    },

    importTar(caller, path, name) {
      if (!caller.admin)
        throw new ImageServiceError("permission_denied", "importing from a server path needs an admin key");
      if (!path.startsWith("/")) throw new ImageInputError("path must be absolute");
      checkImageName(name);
      if (!existsSync(path)) throw new ImageServiceError("not_found", `${path} does not exist`);
      return startImport(caller, path, name, path);
    },

    async receiveUpload(caller, name, size, chunks) {
      checkImageName(name);
      if (!Number.isSafeInteger(size) || size <= 0)
        throw new ImageInputError("the upload's size must be given");
      // The name and quota first: a refused upload is refused before its bytes arrive.
      const admitted = admit(caller, name, `upload ${randomBytes(8).toString("hex")}`);
      if ("task" in admitted) throw new ImageServiceError("already_exists", `image ${name} is being built`);
      // The tar, its OCI copy and the rootfs: about three times the upload.
      checkDisk(3 * size, `importing ${Math.ceil(size / 1024 / 1024)} MB`);
      const path = join(tmpRoot, `upload-${randomBytes(8).toString("hex")}.tar`);
      const out = createWriteStream(path, { mode: 0o600 });
      let received = 0;
      try {
        for await (const chunk of chunks) {
          received += chunk.byteLength;
          if (received > size)
            throw new ImageInputError(`the upload is longer than its declared ${size} bytes`);
          if (!out.write(chunk)) await once(out, "drain");
        }
        out.end();
        await once(out, "finish");
        if (received !== size)
          throw new ImageInputError(`the upload ended after ${received} of ${size} bytes`);
      } catch (e) {
        out.destroy();
        rmSync(path, { force: true });
        throw e;
      }
      return startImport(caller, path, name, "the uploaded tar", () => rmSync(path, { force: true }));
    },

    save(caller, sandboxId, name) {
      const admitted = admit(caller, name, `save ${sandboxId}`);
      if ("task" in admitted) return admitted.task;
      return startBuild(
        "image_save",
        caller,
        name,
        `save ${sandboxId}`,
        admitted.existing,
        async (t, work, signal) => {
          t.phase = "freezing";
          const rootfs = join(work, "image", "rootfs");
          const base = await o.sandboxes.withFrozenRootfs(sandboxId, async (view) => {
            if (!caller.admin && view.userId !== caller.userId) {
              throw new ImageServiceError("not_found", `sandbox ${sandboxId} not found`);
            }
            t.phase = "copying";
            // The merged view: the base image with the sandbox's changes (deleted files stay deleted).
            mkdirSync(rootfs, { mode: 0o755 });
            try {
              await runTool("cp", ["-a", "--sparse=always", `${view.rootfs}/.`, `${rootfs}/`], {
                signal,
                timeoutMs: o.taskTimeoutMs,
              });
            } catch (e) {
              throw new TaskFailure(
                `copying the sandbox's files failed: ${(e as Error).message.slice(0, 300)}`,
              );
            }
            return view.image;
          });
          t.phase = "injecting";
          const user = injectAgentNeeds(rootfs);
          const parent = registry.get(base);
          return {
            description: `saved from sandbox ${sandboxId}${parent ? ` (image ${base})` : ""}`,
            source: `saved:${sandboxId}`,
            user,
            digest: "",
            config: parent?.runConfig ?? EMPTY_CONFIG,
          };
        },
      );
    },

    remove(caller, name) {
      const image = registry.get(name);
      if (!image || !visibleTo(image, caller.userId))
        throw new ImageServiceError("not_found", `image ${name} not found`);
      if (image.owner !== caller.userId && !(caller.admin && image.owner === "")) {
        throw new ImageServiceError("permission_denied", `image ${name} is not yours`);
      }
      if (inflight.has(name))
        throw new ImageServiceError("failed_precondition", `image ${name} is being built`);
      const n = inUse(name);
      if (n > 0) {
        throw new ImageServiceError(
          "failed_precondition",
          `image ${name} is used by ${n} sandbox(es); destroy them first`,
        );
      }
      // Renamed away first: the registry stops listing it at once, the delete may take a while.
      const gone = join(tmpRoot, `deleted-${name}-${Date.now()}`);
      renameSync(join(registry.dir, name), gone);
      rmSync(gone, { recursive: true, force: true });
    },

    share(caller, name, user, unshare) {
      const image = registry.get(name);
      if (!image || !visibleTo(image, caller.userId))
        throw new ImageServiceError("not_found", `image ${name} not found`);
      if (image.owner !== caller.userId)
        throw new ImageServiceError("permission_denied", `image ${name} is not yours`);
      if (user === "" || user === caller.userId) throw new ImageInputError("name another user to share with");
      const set = new Set(image.sharedWith);
      if (unshare) set.delete(user);
      else set.add(user);
      updateMeta(join(registry.dir, name), { shared_with: [...set].sort() });
      return [...set].sort();
    },

    task(caller, id) {
      const t = tasks.get(id);
      if (!t || (!caller.admin && t.userId !== caller.userId)) {
        throw new ImageServiceError("not_found", `task ${id.slice(0, 40)} not found`);
      }
      return t;
    },

    list: (userId) => registry.list().filter((i) => visibleTo(i, userId)),
  };

  function startImport(
    caller: ImageCaller,
    path: string,
    name: string,
    shown: string,
    cleanup?: () => void,
  ): ImageTask {
    let admitted: ReturnType<typeof admit>;
    try {
      admitted = admit(caller, name, `import ${path}`);
    } catch (e) {
      cleanup?.();
      throw e;
    }
    if ("task" in admitted) return admitted.task;
    return startBuild(
      "image_import",
      caller,
      name,
      `import ${path}`,
      admitted.existing,
      async (t, work, signal) => {
        try {
          t.phase = "reading";
          const kind = (await isOciArchive(path, signal)) ? "oci-archive" : "docker-archive";
          return await fetchAndUnpack(t, work, signal, { kind, path }, shown, false, "import", "");
        } finally {
          cleanup?.();
        }
      },
    );
  }

  async function fetchAndUnpack(
    t: ImageTask,
    work: string,
    signal: AbortSignal,
    source: ImageSource,
    shown: string,
    withCreds: boolean,
    sourceText: string,
    digestKey: string,
  ): Promise<ImageMeta> {
    const layout = join(work, "oci");
    t.phase = "copying";
    // skopeo prints one "Copying blob" line per layer when not on a TTY; bytes come from the layout.
    const bytes = setInterval(() => {
      t.bytesDone = dirBytes(layout);
    }, 500);
    try {
      await o.skopeo.copy(source, layout, "img", {
        signal,
        timeoutMs: o.taskTimeoutMs,
        onLine: (line) => {
          if (/^Copying blob /.test(line) && !/skipped|done/.test(line)) t.layersDone++;
        },
      });
    } catch (e) {
      throw source.kind === "registry" ? explainSkopeo(e, shown, withCreds) : importError(e, shown);
    } finally {
      clearInterval(bytes);
    }
    t.bytesDone = dirBytes(layout);
    crashPoint("vmm.image.after-copy");
    // Unpacked layers take about three times their compressed size.
    checkDisk(3 * dirBytes(layout), `unpacking ${shown}`);
    const image = readLayoutImage(layout, "img");
    t.layersTotal = image.layers;
    t.layersDone = image.layers;
    if (t.digest === "") t.digest = image.manifestDigest;
    t.phase = "unpacking";
    const rootfs = join(work, "image", "rootfs");
    try {
      await o.umoci.unpack(layout, "img", rootfs, { signal, timeoutMs: o.taskTimeoutMs });
    } catch (e) {
      throw new TaskFailure(
        `unpacking ${shown} failed: ${e instanceof ToolError ? e.stderr.split("\n").pop() : (e as Error).message}`,
      );
    }
    rmSync(layout, { recursive: true, force: true });
    t.phase = "injecting";
    const user = injectAgentNeeds(rootfs);
    return {
      description: `${sourceText === "import" ? "imported from" : "pulled from"} ${shown} (${image.os}/${image.architecture})`,
      source: sourceText,
      user,
      digest: digestKey === "" ? image.manifestDigest : digestKey,
      config: image.config,
    };
  }
}

interface ImageMeta {
  description: string;
  source: string;
  user: string;
  digest: string;
  config: ImageRunConfig;
}

const RESULTS: Record<ImageTaskKind, string> = {
  image_pull: "pulled",
  image_import: "imported",
  image_save: "saved",
};

const EMPTY_CONFIG: ImageRunConfig = { env: [], cmd: [], entrypoint: [], workingDir: "", user: "" };

function importError(e: unknown, shown: string): Error {
  if (!(e instanceof ToolError)) return e as Error;
  const last =
    e.stderr
      .split("\n")
      .filter((l) => l.trim() !== "")
      .pop() ?? "";
  return new TaskFailure(`${shown} is not a docker-archive or oci-archive tarball: ${last.slice(0, 300)}`);
}

/** An oci-archive holds `oci-layout` at its top; a docker-archive (`docker save`) holds `manifest.json`. */
async function isOciArchive(path: string, signal: AbortSignal): Promise<boolean> {
  try {
    const names = await runTool("tar", ["-tf", path], { signal, timeoutMs: 120_000 });
    const entries = names.split("\n").map((n) => n.replace(/^\.\//, ""));
    return entries.includes("oci-layout") && !entries.includes("manifest.json");
  } catch (e) {
    throw new TaskFailure(`${path} is not a tar archive: ${(e as ToolError).stderr ?? (e as Error).message}`);
  }
}

function updateMeta(dir: string, changes: Record<string, unknown>): void {
  const path = join(dir, "image.json");
  const meta = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  writeFileSync(`${path}.tmp`, `${JSON.stringify({ ...meta, ...changes }, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
}
