import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { type ImageRunscSettings, parseImageRunscSettings } from "./image-runsc-settings.js";

/**
 * Root filesystem images under `<state_dir>/images/<name>/`: `rootfs/` plus `image.json`,
 * which the build scripts (images/<name>/build.sh) write last, so an image without it is
 * incomplete and ignored.
 */
export interface ImageRecord {
  name: string;
  description: string;
  sizeBytes: number;
  builtAt: string;
  source: string;
  /** The unprivileged user of the image (uid 1000). */
  user: string;
  rootfs: string;
  /** Owning user id; "" for a system image (built by a script, visible to all). */
  owner: string;
  /** User ids the owner shared the image with. */
  sharedWith: string[];
  /** The manifest digest a pull recorded (a repeat pull of it is a no-op); "" otherwise. */
  digest: string;
  /** The image config's run settings (pulled or imported images): defaults for every exec. */
  runConfig: ImageRunConfig;
  /** Sandbox settings the image needs from gVisor (image-runsc-settings.ts). */
  runsc?: ImageRunscSettings;
  /** Boot hook: a shell command run at boot (as the image user), before the sandbox's own init. */
  init?: string;
}

/** From the OCI image config: Env and WorkingDir become the sandbox's defaults; Cmd/User are recorded. */
export interface ImageRunConfig {
  env: string[];
  cmd: string[];
  entrypoint: string[];
  workingDir: string;
  user: string;
}

export interface ImageRegistry {
  list(): ImageRecord[];
  /** The image, or undefined if it is missing or incomplete. */
  get(name: string): ImageRecord | undefined;
  readonly dir: string;
}

const IMAGE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export function createImageRegistry(imagesDir: string): ImageRegistry {
  const read = (name: string): ImageRecord | undefined => {
    if (!IMAGE_NAME.test(name)) return undefined;
    const dir = join(imagesDir, name);
    const rootfs = join(dir, "rootfs");
    // No /bin/sh needed (distroless images): the agent brings its own runtime.
    if (!existsSync(rootfs)) return undefined;
    let meta: Record<string, unknown>;
    try {
      meta = JSON.parse(readFileSync(join(dir, "image.json"), "utf8")) as Record<string, unknown>;
    } catch {
      return undefined;
    }
    const str = (k: string, d = "") => (typeof meta[k] === "string" ? (meta[k] as string) : d);
    const strs = (v: unknown) =>
      Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
    const cfg = (
      typeof meta["config"] === "object" && meta["config"] !== null ? meta["config"] : {}
    ) as Record<string, unknown>;
    let runsc: ImageRunscSettings | undefined;
    try {
      runsc = parseImageRunscSettings(meta["runsc"]);
    } catch {
      // Settings the engine refuses make the image unusable, like an incomplete one.
      return undefined;
    }
    const init = str("init");
    return {
      name,
      description: str("description"),
      sizeBytes: typeof meta["size_bytes"] === "number" ? meta["size_bytes"] : 0,
      builtAt: str("built_at"),
      source: str("source"),
      user: str("user", "lohar"),
      rootfs,
      owner: str("owner"),
      sharedWith: strs(meta["shared_with"]),
      digest: str("digest"),
      runConfig: {
        env: strs(cfg["env"]),
        cmd: strs(cfg["cmd"]),
        entrypoint: strs(cfg["entrypoint"]),
        workingDir: typeof cfg["working_dir"] === "string" ? cfg["working_dir"] : "",
        user: typeof cfg["user"] === "string" ? cfg["user"] : "",
      },
      ...(runsc === undefined ? {} : { runsc }),
      ...(init === "" ? {} : { init }),
    };
  };
  return {
    dir: imagesDir,
    get: read,
    list() {
      let names: string[] = [];
      try {
        names = readdirSync(imagesDir);
      } catch {
        return [];
      }
      return names
        .sort()
        .map(read)
        .filter((i): i is ImageRecord => i !== undefined);
    },
  };
}
