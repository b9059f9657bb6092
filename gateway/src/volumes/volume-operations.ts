import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  NAME_RULE,
  type VmmVolumeMountSchema,
  type Volume,
  type VolumeRecord,
  VolumeSchema,
} from "@bhatti/proto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "@bhatti/runtime";
import type { ServiceClients } from "../service-clients.js";
import type { VolumeMountInput } from "./volume-input.js";

/**
 * The caller's volumes, shared by REST and Connect. The store holds the rows (quota, names,
 * attachments); the vmm holds the image files and their host mounts. Each operation asks the
 * store first, so a refusal (quota, name, attached) changes nothing on the host.
 */
export interface VolumeOperations {
  create(userId: string, name: string, sizeMb: number): Promise<Volume>;
  list(userId: string): Promise<Volume[]>;
  get(userId: string, ref: string): Promise<Volume>;
  resize(userId: string, ref: string, sizeMb: number): Promise<Volume>;
  delete(userId: string, ref: string): Promise<Volume>;
  /**
   * Records the attachments of a sandbox being created (its row exists; deleting the row drops
   * them) and returns what the vmm mounts. Another user's volume is NotFound.
   */
  attachForCreate(
    userId: string,
    sandboxId: string,
    mounts: readonly VolumeMountInput[],
  ): Promise<MessageInitShape<typeof VmmVolumeMountSchema>[]>;
}

export interface VolumeSizeLimits {
  minMb: number;
  maxMb: number;
}

/** The public message of a store row (no user id, no host path). */
export function volumeMessage(v: VolumeRecord): Volume {
  return create(VolumeSchema, {
    id: v.id,
    name: v.name,
    sizeMb: v.sizeMb,
    status: v.status,
    ...(v.createdAt ? { createdAt: v.createdAt } : {}),
    attachments: v.attachments.map((a) => ({
      sandboxId: a.sandboxId,
      mount: a.mount,
      readOnly: a.readOnly,
      ...(a.attachedAt ? { attachedAt: a.attachedAt } : {}),
    })),
  });
}

const must = (v: VolumeRecord | undefined): VolumeRecord => {
  if (v === undefined) throw new ConnectError("store returned no volume", Code.Internal);
  return v;
};

export function createVolumeOperations(deps: {
  clients: Pick<ServiceClients, "store" | "vmmVolumes">;
  limits: VolumeSizeLimits;
  logger: Logger;
}): VolumeOperations {
  const { store, vmmVolumes } = deps.clients;
  const { minMb, maxMb } = deps.limits;

  const checkSize = (sizeMb: number) => {
    if (!Number.isInteger(sizeMb) || sizeMb < minMb || sizeMb > maxMb) {
      throw new ConnectError(
        `size_mb must be a whole number of MiB between ${minMb} and ${maxMb}, got ${sizeMb}`,
        Code.InvalidArgument,
      );
    }
  };

  const getRow = async (userId: string, ref: string) =>
    must((await store.getVolume({ userId, volume: ref })).volume);

  /** "a (id), b (id)": the sandboxes a volume is attached to, by name where the row still exists. */
  const attachedTo = async (userId: string, v: VolumeRecord): Promise<string> => {
    const names = await Promise.all(
      v.attachments.map(async (a) => {
        try {
          const { sandbox } = await store.getSandbox({ userId, sandbox: a.sandboxId });
          return sandbox ? `${sandbox.name} (${a.sandboxId})` : a.sandboxId;
        } catch {
          return a.sandboxId;
        }
      }),
    );
    return names.join(", ");
  };

  const refuseAttached = async (userId: string, v: VolumeRecord, what: string): Promise<never> => {
    throw new ConnectError(
      `volume ${v.name} is attached to ${await attachedTo(userId, v)}; ${what}`,
      Code.FailedPrecondition,
    );
  };

  /** Volumes this gateway is resizing now (one resize per volume at a time). */
  const resizing = new Set<string>();

  const setStatus = (userId: string, id: string, status: string) =>
    store.updateVolume({ userId, volume: id, status });

  return {
    async create(userId, name, sizeMb) {
      if (!NAME_RULE.test(name)) {
        throw new ConnectError(
          `invalid volume name ${JSON.stringify(name.slice(0, 80))}: use 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit`,
          Code.InvalidArgument,
        );
      }
      checkSize(sizeMb);
      const row = must((await store.createVolume({ userId, name, sizeMb })).volume);
      let path: string;
      try {
        path = (await vmmVolumes.createVolumeImage({ userId, volumeId: row.id, sizeMb })).path;
      } catch (e) {
        await store.deleteVolume({ userId, volume: row.id }).catch((err: unknown) => {
          deps.logger.warn("volume create: removing the row failed", { volume_id: row.id, error: err });
        });
        throw e;
      }
      return volumeMessage(
        must((await store.updateVolume({ userId, volume: row.id, status: "ready", filePath: path })).volume),
      );
    },

    list: async (userId) => (await store.listVolumes({ userId })).volumes.map(volumeMessage),

    get: async (userId, ref) => volumeMessage(await getRow(userId, ref)),

    async resize(userId, ref, sizeMb) {
      const v = await getRow(userId, ref);
      // "creating" with an image (file_path) and no resize running here: a resize this gateway
      // did not finish (it crashed). Growing is idempotent, so it may run again.
      const unfinishedResize = v.status === "creating" && v.filePath !== "" && !resizing.has(v.id);
      if (v.status !== "ready" && !unfinishedResize) {
        throw new ConnectError(`volume ${v.name} is being created or resized`, Code.FailedPrecondition);
      }
      if (sizeMb < v.sizeMb) {
        throw new ConnectError(`volumes only grow (${v.sizeMb} MB -> ${sizeMb} MB)`, Code.InvalidArgument);
      }
      checkSize(sizeMb);
      if (v.attachments.length > 0) {
        await refuseAttached(userId, v, "detach it (destroy those sandboxes) to resize");
      }
      if (resizing.has(v.id)) {
        throw new ConnectError(`volume ${v.name} is being resized`, Code.FailedPrecondition);
      }
      resizing.add(v.id);
      try {
        // "creating" blocks attach while the image is being resized (the store refuses it).
        const locked = must((await setStatus(userId, v.id, "creating")).volume);
        if (locked.attachments.length > 0) {
          await setStatus(userId, v.id, "ready");
          await refuseAttached(userId, locked, "detach it to resize");
        }
        try {
          if (sizeMb !== v.sizeMb) await store.updateVolume({ userId, volume: v.id, sizeMb });
          await vmmVolumes.resizeVolumeImage({ userId, volumeId: v.id, sizeMb });
        } finally {
          await setStatus(userId, v.id, "ready").catch((err: unknown) => {
            deps.logger.warn("volume resize: setting it ready failed", { volume_id: v.id, error: err });
          });
        }
      } finally {
        resizing.delete(v.id);
      }
      return volumeMessage(await getRow(userId, v.id));
    },

    async delete(userId, ref) {
      const v = await getRow(userId, ref);
      if (v.attachments.length > 0) await refuseAttached(userId, v, "destroy those sandboxes first");
      let deleted: VolumeRecord;
      try {
        deleted = must((await store.deleteVolume({ userId, volume: v.id })).volume);
      } catch (e) {
        // Attached in the meantime: say to which sandboxes.
        if (ConnectError.from(e).code === Code.FailedPrecondition) {
          await refuseAttached(userId, await getRow(userId, v.id), "destroy those sandboxes first");
        }
        throw e;
      }
      // The row is gone, so nothing can attach it any more; now the file.
      await vmmVolumes.deleteVolumeImage({ userId, volumeId: deleted.id });
      return volumeMessage(deleted);
    },

    async attachForCreate(userId, sandboxId, mounts) {
      const out: MessageInitShape<typeof VmmVolumeMountSchema>[] = [];
      for (const m of mounts) {
        const v = must(
          (
            await store.attachVolume({
              userId,
              volume: m.name,
              sandbox: sandboxId,
              mount: m.mount,
              readOnly: m.readOnly,
            })
          ).volume,
        );
        out.push({ volumeId: v.id, name: v.name, mount: m.mount, readOnly: m.readOnly });
      }
      return out;
    },
  };
}
