import { existsSync, readdirSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { isSandboxId, isUserId } from "@bhatti/proto";
import { createKeyedLock } from "@bhatti/runtime";
import { mountExt4Image, unmountExt4Image } from "../adapters/loop-disk.js";
import { isMounted } from "../adapters/rootfs.js";
import { EngineError } from "../engine/engine-error.js";
import type { SandboxVolumeSpec } from "../engine/engine.js";
import {
  MAX_VOLUME_MB,
  MIN_VOLUME_MB,
  createVolumeImage,
  deleteVolumeImage,
  ensureDir,
  growVolumeImage,
} from "./volume-image.js";

/** Who holds a volume mount: a sandbox whose container is (or is about to be) running. */
export interface VolumeHolder {
  id: string;
  userId: string;
  volumes: readonly SandboxVolumeSpec[];
}

/**
 * The host side of volumes. Images live at `<state>/volumes/<user>/<volume id>.ext4`; an image is
 * loop-mounted once at `<state>/volumes/mnt/<volume id>` while at least one running sandbox
 * holds it, and every sandbox bind-mounts that one mount (through runsc's gofer), so several
 * sandboxes share it safely. The refcount is in memory, rebuilt from the sandboxes' records by
 * `adopt` after a vmm restart (the mounts themselves live in the host mount namespace and
 * outlive the vmm, as the sandboxes do).
 */
export interface VolumeHost {
  imagePath(userId: string, volumeId: string): string;
  mountPath(volumeId: string): string;
  /** Mounts what the sandbox needs (if not mounted yet) and records it as a holder. */
  acquire(holder: VolumeHolder): Promise<void>;
  /** Drops the sandbox's holds; unmounts (and frees the loop device of) volumes nobody holds. */
  release(sandboxId: string): Promise<void>;
  /** Sandbox ids holding the volume's mount. */
  holders(volumeId: string): string[];
  /** Rebuilds the refcounts from the running sandboxes, mounts what they need, unmounts the rest. */
  adopt(holders: readonly VolumeHolder[]): Promise<void>;
  createImage(userId: string, volumeId: string, sizeMb: number): Promise<string>;
  growImage(userId: string, volumeId: string, sizeMb: number): Promise<void>;
  deleteImage(userId: string, volumeId: string): Promise<boolean>;
}

const bad = (message: string) => new EngineError("invalid_argument", message);

function checkIds(userId: string, volumeId: string): void {
  if (!isUserId(userId)) throw bad(`user id "${userId.slice(0, 40)}" is invalid`);
  if (!isSandboxId(volumeId))
    throw bad(`volume id "${volumeId.slice(0, 40)}" must be 16 lowercase hex chars`);
}

function checkSize(sizeMb: number): void {
  if (!Number.isInteger(sizeMb) || sizeMb < MIN_VOLUME_MB || sizeMb > MAX_VOLUME_MB) {
    throw bad(`size_mb must be an integer between ${MIN_VOLUME_MB} and ${MAX_VOLUME_MB}, got ${sizeMb}`);
  }
}

export function createVolumeHost(options: {
  stateDir: string;
  log?: { warn(msg: string, fields?: Record<string, unknown>): void };
}): VolumeHost {
  const root = join(options.stateDir, "volumes");
  const mntRoot = join(root, "mnt");
  const byVolume = new Map<string, Set<string>>();
  const bySandbox = new Map<string, { userId: string; volumeIds: string[] }>();
  // Mount and unmount of one volume never interleave (two creates sharing it, a destroy).
  const lock = createKeyedLock();

  const imagePath = (userId: string, volumeId: string) => {
    checkIds(userId, volumeId);
    return join(root, userId, `${volumeId}.ext4`);
  };
  const mountPath = (volumeId: string) => {
    if (!isSandboxId(volumeId)) throw bad(`volume id "${volumeId.slice(0, 40)}" is invalid`);
    return join(mntRoot, volumeId);
  };

  const mountOne = (userId: string, volumeId: string) =>
    lock.run(volumeId, async () => {
      const target = mountPath(volumeId);
      if (isMounted(target)) return;
      const image = imagePath(userId, volumeId);
      if (!existsSync(image)) throw new EngineError("not_found", `volume image ${volumeId} is missing`);
      ensureDir(mntRoot);
      await mountExt4Image(image, target);
    });

  const unmountIfUnheld = (volumeId: string) =>
    lock.run(volumeId, async () => {
      if ((byVolume.get(volumeId)?.size ?? 0) > 0) return;
      byVolume.delete(volumeId);
      const target = mountPath(volumeId);
      await unmountExt4Image(target);
      try {
        rmdirSync(target);
      } catch {
        // already gone, or still busy after a lazy unmount
      }
    });

  const host: VolumeHost = {
    imagePath,
    mountPath,

    async acquire(holder) {
      if (holder.volumes.length === 0) return;
      const ids = holder.volumes.map((v) => v.volumeId);
      // Recorded first, so a failure half-way is undone by release().
      bySandbox.set(holder.id, { userId: holder.userId, volumeIds: ids });
      for (const id of ids) {
        const set = byVolume.get(id) ?? new Set<string>();
        set.add(holder.id);
        byVolume.set(id, set);
      }
      for (const id of ids) await mountOne(holder.userId, id);
    },

    async release(sandboxId) {
      const held = bySandbox.get(sandboxId);
      if (!held) return;
      bySandbox.delete(sandboxId);
      for (const id of held.volumeIds) {
        byVolume.get(id)?.delete(sandboxId);
        await unmountIfUnheld(id);
      }
    },

    holders: (volumeId) => [...(byVolume.get(volumeId) ?? [])],

    async adopt(holders) {
      for (const h of holders) {
        try {
          await host.acquire(h);
        } catch (e) {
          options.log?.warn("volume mount at adoption failed", { sandbox: h.id, error: e });
        }
      }
      let names: string[] = [];
      try {
        names = readdirSync(mntRoot);
      } catch {
        return;
      }
      for (const name of names) {
        if (!isSandboxId(name) || byVolume.has(name)) continue;
        await unmountIfUnheld(name).catch((e: unknown) =>
          options.log?.warn("unmount of an unheld volume failed", { volume: name, error: e }),
        );
      }
    },

    async createImage(userId, volumeId, sizeMb) {
      checkSize(sizeMb);
      const path = imagePath(userId, volumeId);
      if (existsSync(path))
        throw new EngineError("already_exists", `volume image ${volumeId} already exists`);
      ensureDir(join(root, userId));
      await createVolumeImage(path, sizeMb);
      return path;
    },

    growImage: (userId, volumeId, sizeMb) =>
      lock.run(volumeId, async () => {
        checkSize(sizeMb);
        const path = imagePath(userId, volumeId);
        if (!existsSync(path)) throw new EngineError("not_found", `volume image ${volumeId} not found`);
        if ((byVolume.get(volumeId)?.size ?? 0) > 0 || isMounted(mountPath(volumeId))) {
          throw new EngineError("failed_precondition", `volume ${volumeId} is mounted; detach it to resize`);
        }
        await growVolumeImage(path, sizeMb);
      }),

    deleteImage: (userId, volumeId) =>
      lock.run(volumeId, async () => {
        const path = imagePath(userId, volumeId);
        if ((byVolume.get(volumeId)?.size ?? 0) > 0 || isMounted(mountPath(volumeId))) {
          throw new EngineError("failed_precondition", `volume ${volumeId} is mounted; detach it first`);
        }
        return deleteVolumeImage(path);
      }),
  };
  return host;
}

/** The OCI bind mounts of a sandbox's volumes (the gofer serves each host mount). */
export function volumeOciMounts(
  host: Pick<VolumeHost, "mountPath">,
  volumes: readonly SandboxVolumeSpec[],
): Record<string, unknown>[] {
  return volumes.map((v) => ({
    destination: v.mount,
    type: "bind",
    source: host.mountPath(v.volumeId),
    options: ["rbind", v.readOnly ? "ro" : "rw", "nosuid", "nodev"],
  }));
}
