import { randomBytes } from "node:crypto";
import { basename } from "node:path";
import {
  NAME_RULE,
  type Snapshot,
  type SnapshotRecord,
  SnapshotSchema,
  ThermalState,
  type VmmSandbox,
} from "@bhatti/proto";
import { type Logger, crashPoint } from "@bhatti/runtime";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { AuthenticatedUser } from "../auth/authenticated-user.js";
import { checkSandboxName } from "../sandboxes/create-input.js";
import type { SandboxManager } from "../sandboxes/sandbox-manager.js";
import type { SandboxState } from "../sandboxes/sandbox-view.js";
import type { ServiceClients } from "../service-clients.js";
import type { VolumeOperations } from "../volumes/volume-operations.js";
import type { WakeController } from "../wake/wake-controller.js";
import { createSnapshotVolumes, recordedVolumes } from "./snapshot-volumes.js";

/** Named snapshots of a user's sandboxes: the store rows and the vmm's files kept in step. */
export interface SnapshotManager {
  create(
    user: AuthenticatedUser,
    sandboxRef: string,
    name: string,
    fsOnly: boolean,
  ): Promise<{ snapshot: Snapshot; pausedMs: number }>;
  list(user: AuthenticatedUser): Promise<Snapshot[]>;
  get(user: AuthenticatedUser, ref: string): Promise<Snapshot>;
  delete(user: AuthenticatedUser, ref: string): Promise<Snapshot>;
  /** A new sandbox from the snapshot, or (`into`) an existing one rewound to it. */
  resume(
    user: AuthenticatedUser,
    ref: string,
    options: { name?: string; into?: string },
  ): Promise<SandboxState>;
}

const SNAPSHOT_TIMEOUT_MS = 600_000;
const RESUME_TIMEOUT_MS = 300_000;

interface StoredManifest {
  kind?: string;
  image?: string;
  cpus?: number;
  memoryMb?: number;
  diskSizeMb?: number;
  volumes?: unknown;
}

function manifestOf(row: SnapshotRecord): StoredManifest {
  try {
    const m: unknown = JSON.parse(row.manifestJson || "{}");
    return typeof m === "object" && m !== null ? (m as StoredManifest) : {};
  } catch {
    return {};
  }
}

export function snapshotMessage(row: SnapshotRecord): Snapshot {
  return create(SnapshotSchema, {
    id: row.id,
    name: row.name,
    sourceSandbox: row.sourceSandboxId,
    type: manifestOf(row).kind === "filesystem" ? "filesystem" : "memory",
    sizeMb: row.sizeMb,
    ...(row.createdAt !== undefined ? { createdAt: row.createdAt } : {}),
  });
}

/**
 * An internal stream closed with CANCEL while our caller is still there means the vmm died
 * mid-call (the supervisor restarts it): Unavailable (503, retry), not a client cancel (499).
 */
async function vmmCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    const err = ConnectError.from(e);
    if (err.code === Code.Canceled) {
      throw new ConnectError(
        `the vmm stopped during the operation; retry: ${err.rawMessage}`,
        Code.Unavailable,
      );
    }
    throw err;
  }
}

export function checkSnapshotName(name: string): void {
  if (!NAME_RULE.test(name)) {
    throw new ConnectError(
      `invalid snapshot name ${JSON.stringify(name.slice(0, 80))}: use 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit`,
      Code.InvalidArgument,
    );
  }
}

export function createSnapshotManager(deps: {
  clients: ServiceClients;
  sandboxes: SandboxManager;
  wake: WakeController;
  logger: Logger;
  /** Re-attaches a snapshot's volumes by name on resume. */
  volumes: Pick<VolumeOperations, "attachForCreate">;
}): SnapshotManager {
  const { clients, sandboxes, wake, logger } = deps;
  const { store, vmmSnapshots, vmm } = clients;
  const snapshotVolumes = createSnapshotVolumes({ clients, volumes: deps.volumes, logger });

  const getRow = async (user: AuthenticatedUser, ref: string): Promise<SnapshotRecord> => {
    const { snapshot } = await store.getSnapshot({ userId: user.id, snapshot: ref });
    if (snapshot === undefined)
      throw new ConnectError(`snapshot ${JSON.stringify(ref)} not found`, Code.NotFound);
    return snapshot;
  };

  /** The vmm's id of the snapshot's files: the last part of the path the row recorded. */
  const filesOf = (row: SnapshotRecord) => basename(row.path);

  /** Cheap refusals before a sandbox is paused: the store re-checks both in its transaction. */
  const precheck = async (user: AuthenticatedUser, name: string) => {
    const { snapshots } = await store.listSnapshots({ userId: user.id });
    if (snapshots.some((s) => s.name === name)) {
      throw new ConnectError(`snapshot ${JSON.stringify(name)} already exists`, Code.AlreadyExists);
    }
    const max = user.record.limits?.maxSnapshots;
    if (max !== undefined && snapshots.length >= max) {
      throw new ConnectError(`snapshot limit reached (${snapshots.length}/${max})`, Code.ResourceExhausted);
    }
  };

  const removeFiles = async (userId: string, snapshotId: string) => {
    try {
      await vmmSnapshots.deleteSnapshot({ userId, snapshotId });
    } catch (e) {
      logger.error("removing snapshot files failed", { snapshot_id: snapshotId, error: e });
    }
  };

  const markRunning = async (user: AuthenticatedUser, id: string, sb: VmmSandbox) => {
    const { sandbox } = await store.updateSandbox({
      userId: user.id,
      sandbox: id,
      status: "running",
      ip: sb.address,
      engineId: sb.id,
      engineMetaJson: JSON.stringify({ engine: sb.engine }),
      thermalState: ThermalState.HOT,
    });
    if (sandbox === undefined) throw new ConnectError("store returned no sandbox", Code.Internal);
    // The agent token may have changed (a rewind takes the snapshot's): drop the cached client.
    wake.forget(id);
    wake.markHot(sb);
  };

  return {
    async create(user, sandboxRef, name, fsOnly) {
      checkSnapshotName(name);
      const sandboxId = await sandboxes.resolveId(user, sandboxRef);
      await precheck(user, name);
      // A warm or cold sandbox is woken first: the snapshot is of its running state.
      await wake.ensureHot(sandboxId);
      const made = await vmmCall(() =>
        vmmSnapshots.createSnapshot(
          { sandboxId, userId: user.id, fsOnly },
          { timeoutMs: SNAPSHOT_TIMEOUT_MS },
        ),
      );
      crashPoint("gateway.snapshot.after-vmm-create");
      try {
        const { snapshot } = await store.createSnapshot({
          userId: user.id,
          name,
          sourceSandboxId: sandboxId,
          path: made.path,
          manifestJson: made.manifestJson,
          sizeMb: Math.ceil(Number(made.sizeBytes) / (1024 * 1024)),
        });
        if (snapshot === undefined) throw new ConnectError("store returned no snapshot", Code.Internal);
        return { snapshot: snapshotMessage(snapshot), pausedMs: made.pausedMs };
      } catch (e) {
        // Lost a race for the name or the quota: the files must not outlive the refusal.
        await removeFiles(user.id, made.snapshotId);
        throw e;
      }
    },

    async list(user) {
      const { snapshots } = await store.listSnapshots({ userId: user.id });
      return snapshots.map(snapshotMessage);
    },

    get: async (user, ref) => snapshotMessage(await getRow(user, ref)),

    async delete(user, ref) {
      const row = await getRow(user, ref);
      // Files first: a failure leaves the row, so the delete can be retried.
      await vmmSnapshots.deleteSnapshot({ userId: user.id, snapshotId: filesOf(row) });
      try {
        await store.deleteSnapshot({ userId: user.id, snapshot: row.id });
      } catch (e) {
        if (ConnectError.from(e).code !== Code.NotFound) throw e;
      }
      return snapshotMessage(row);
    },

    async resume(user, ref, options) {
      const row = await getRow(user, ref);
      const snapshotId = filesOf(row);
      const m = manifestOf(row);
      const recorded = recordedVolumes(m);
      if (options.into !== undefined && options.into !== "") {
        if (options.name !== undefined && options.name !== "") {
          throw new ConnectError("name and into cannot be used together", Code.InvalidArgument);
        }
        const id = await sandboxes.resolveId(user, options.into);
        // The sandbox's mount set becomes the snapshot's (the vmm re-checks it before stopping
        // anything); on failure its own attachments are put back.
        const attached = await snapshotVolumes.replaceAttachments(user.id, row.name, id, recorded);
        let sb: VmmSandbox | undefined;
        try {
          wake.markNotHot(id);
          sb = (
            await vmmCall(() =>
              vmmSnapshots.rewindSandbox(
                { userId: user.id, snapshotId, sandboxId: id, volumes: attached.mounts },
                { timeoutMs: RESUME_TIMEOUT_MS },
              ),
            )
          ).sandbox;
        } catch (e) {
          await attached.undo();
          throw e;
        }
        if (sb === undefined) throw new ConnectError("vmm returned no sandbox", Code.Internal);
        await markRunning(user, id, sb);
        return sandboxes.get(user, id);
      }
      const name = options.name || `${row.name.slice(0, 55)}-${randomBytes(3).toString("hex")}`;
      checkSandboxName(name);
      // A missing volume is refused before the sandbox row exists.
      await snapshotVolumes.checkPresent(user.id, row.name, recorded);
      const { sandbox: created } = await store.createSandbox({
        userId: user.id,
        name,
        image: m.image ?? "",
        cpus: m.cpus ?? 1,
        memoryMb: m.memoryMb ?? 1024,
        diskSizeMb: m.diskSizeMb ?? 0,
        labels: {},
        status: "creating",
      });
      if (created === undefined) throw new ConnectError("store returned no sandbox", Code.Internal);
      const id = created.id;
      try {
        // Deleting the row (the rollback below) drops these attachments again.
        const volumes = await snapshotVolumes.attachToNew(user.id, row.name, id, recorded);
        const { sandbox: sb } = await vmmCall(() =>
          vmmSnapshots.resumeSnapshot(
            { userId: user.id, snapshotId, sandboxId: id, sandboxName: name, volumes },
            { timeoutMs: RESUME_TIMEOUT_MS },
          ),
        );
        if (sb === undefined) throw new ConnectError("vmm returned no sandbox", Code.Internal);
        await markRunning(user, id, sb);
      } catch (e) {
        logger.warn("snapshot resume failed; rolling back", {
          sandbox_id: id,
          error: ConnectError.from(e).rawMessage,
        });
        await vmm
          .destroySandbox({ id })
          .catch((de: unknown) =>
            logger.error("rollback: vmm destroy failed", { sandbox_id: id, error: de }),
          );
        await store.deleteSandbox({ userId: user.id, sandbox: id }).catch(() => undefined);
        wake.forget(id);
        throw e;
      }
      await store
        .appendEvents({
          events: [
            {
              type: "snapshot.resumed",
              userId: user.id,
              sandboxId: id,
              metaJson: JSON.stringify({ snapshot: row.name }),
            },
          ],
        })
        .catch(() => undefined);
      return sandboxes.get(user, id);
    },
  };
}
