import { type SandboxRecord, ThermalState, type VmmSandbox, thermalName, vmmStatusName } from "@bhatti/proto";
import { type Logger, crashPoint } from "@bhatti/runtime";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { AuthenticatedUser } from "../auth/authenticated-user.js";
import type { ServiceClients } from "../service-clients.js";
import type { WakeController } from "../wake/wake-controller.js";
import type { VolumeOperations } from "../volumes/volume-operations.js";
import type { VolumeMountInput } from "../volumes/volume-input.js";
import type { CreateSandboxInput } from "./create-input.js";
import type { SandboxRefCache } from "./sandbox-ref-cache.js";
import type { SandboxState } from "./sandbox-view.js";

export interface SandboxUpdate {
  keepHot?: boolean;
  name?: string;
  labelsAdd?: Record<string, string>;
  labelsRemove?: string[];
}

/** Control operations on a user's sandboxes: the store row and the vmm kept in step. */
export interface SandboxManager {
  /** Idempotent by name: an existing sandbox of that name is returned with existing = true. */
  create(
    user: AuthenticatedUser,
    input: CreateSandboxInput,
  ): Promise<{ state: SandboxState; existing: boolean }>;
  list(user: AuthenticatedUser, labels: Record<string, string>): Promise<SandboxState[]>;
  get(user: AuthenticatedUser, ref: string): Promise<SandboxState>;
  /** The id of the user's sandbox `ref` (id or name); NotFound for anyone else's. */
  resolveId(user: AuthenticatedUser, ref: string): Promise<string>;
  update(user: AuthenticatedUser, ref: string, update: SandboxUpdate): Promise<SandboxState>;
  destroy(user: AuthenticatedUser, ref: string): Promise<SandboxRecord>;
  stop(user: AuthenticatedUser, ref: string): Promise<SandboxState>;
  start(user: AuthenticatedUser, ref: string, force: boolean): Promise<SandboxState>;
}

/** Merges the engine's live view into the row (status, address, thermal) without writing it. */
function withEngineView(record: SandboxRecord, sb: VmmSandbox | undefined): SandboxState {
  if (sb === undefined) {
    return {
      record,
      thermal:
        record.status === "running" || record.status === "stopped"
          ? (thermalName(record.thermalState) ?? "")
          : "",
      thermalSinceMs: record.thermalSince === undefined ? 0 : timestampMs(record.thermalSince),
    };
  }
  const status = vmmStatusName(sb.status) ?? record.status;
  const merged = { ...record, status, ip: sb.address !== "" ? sb.address : record.ip } as SandboxRecord;
  return {
    record: merged,
    // A stopped sandbox is cold: inspect shows it, and since when.
    thermal: status === "running" || status === "stopped" ? (thermalName(sb.thermal) ?? "") : "",
    thermalSinceMs: sb.thermalSince === undefined ? 0 : timestampMs(sb.thermalSince),
  };
}

const CREATE_TIMEOUT_MS = 180_000;
/** How long a rollback step waits for a restarting service (the supervisor restarts in < 1 s at first). */
const ROLLBACK_RETRY_MS = 15_000;

/** Runs `call`, retrying while the service is Unavailable (restarting), for up to ROLLBACK_RETRY_MS. */
async function whileUnavailable<T>(call: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + ROLLBACK_RETRY_MS;
  for (let delay = 100; ; delay = Math.min(delay * 2, 2_000)) {
    try {
      return await call();
    } catch (e) {
      if (ConnectError.from(e).code !== Code.Unavailable || Date.now() + delay > deadline) throw e;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
const LIFECYCLE_TIMEOUT_MS = 180_000;

export function createSandboxManager(deps: {
  clients: ServiceClients;
  wake: WakeController;
  refs: SandboxRefCache;
  logger: Logger;
  /** Attaches the create's volumes in the store (the row's deletion drops them again). */
  volumes?: Pick<VolumeOperations, "attachForCreate">;
}): SandboxManager {
  const { clients, wake, refs, logger } = deps;
  const { store, vmm } = clients;

  const attachVolumes = (userId: string, id: string, mounts: readonly VolumeMountInput[]) => {
    if (deps.volumes === undefined) throw new ConnectError("volumes are not available", Code.Unimplemented);
    return deps.volumes.attachForCreate(userId, id, mounts);
  };

  const getRecord = async (user: AuthenticatedUser, ref: string): Promise<SandboxRecord> => {
    const { sandbox } = await store.getSandbox({ userId: user.id, sandbox: ref });
    if (sandbox === undefined)
      throw new ConnectError(`sandbox ${JSON.stringify(ref)} not found`, Code.NotFound);
    return sandbox;
  };

  const engineView = async (id: string): Promise<VmmSandbox | undefined> => {
    try {
      return (await vmm.getSandboxStatus({ id })).sandbox;
    } catch (e) {
      const err = ConnectError.from(e);
      if (err.code !== Code.NotFound && err.code !== Code.Unimplemented) {
        logger.warn("vmm status unavailable", { sandbox_id: id, error: err.rawMessage });
      }
      return undefined;
    }
  };

  const appendEvent = async (type: string, record: SandboxRecord, meta: Record<string, unknown>) => {
    try {
      await store.appendEvents({
        events: [{ type, userId: record.userId, sandboxId: record.id, metaJson: JSON.stringify(meta) }],
      });
    } catch (e) {
      logger.warn("recording an event failed", { type, sandbox_id: record.id, error: e });
    }
  };

  /**
   * Undoes a create that failed after its row existed, so no half-created sandbox remains. The
   * usual cause is the vmm or the store dying mid-create; the supervisor restarts it within
   * seconds, so each step waits for it (bounded) instead of giving up at once. What still fails
   * is settled by the vmm's reconciler (orphan sandboxes, `creating` rows).
   */
  const rollback = async (user: AuthenticatedUser, id: string, cause: unknown) => {
    logger.warn("sandbox create failed; rolling back", {
      sandbox_id: id,
      error: ConnectError.from(cause).rawMessage,
    });
    try {
      await whileUnavailable(() => vmm.destroySandbox({ id }, { timeoutMs: LIFECYCLE_TIMEOUT_MS }));
    } catch (e) {
      logger.error("rollback: vmm destroy failed", { sandbox_id: id, error: e });
    }
    try {
      await whileUnavailable(() => store.deleteSandbox({ userId: user.id, sandbox: id }));
    } catch (e) {
      if (ConnectError.from(e).code !== Code.NotFound) {
        logger.error("rollback: deleting the row failed", { sandbox_id: id, error: e });
      }
    }
    wake.forget(id);
  };

  /**
   * The image a create will use, checked before any row exists: the vmm's default when none is
   * named (the row then records the real image), NotFound for an unknown one (v1: 404).
   */
  const checkPerSandboxLimits = (user: AuthenticatedUser, input: CreateSandboxInput) => {
    const limits = user.record.limits;
    if (limits === undefined) return;
    if (input.cpus > limits.maxCpusPerSandbox) {
      throw new ConnectError(
        `cpus ${input.cpus} is over the limit of ${limits.maxCpusPerSandbox} per sandbox`,
        Code.InvalidArgument,
      );
    }
    if (input.memoryMb > limits.maxMemoryMbPerSandbox) {
      throw new ConnectError(
        `memory_mb ${input.memoryMb} is over the limit of ${limits.maxMemoryMbPerSandbox} per sandbox`,
        Code.InvalidArgument,
      );
    }
  };

  const resolveImage = async (user: AuthenticatedUser, requested: string): Promise<string> => {
    // Only the images this user may use: its own, shared with it, and system ones.
    const { images } = await vmm.listImages({ userId: user.id });
    if (requested === "") {
      const fallback = images.find((i) => i.isDefault) ?? images[0];
      if (fallback === undefined) throw new ConnectError("no image is installed", Code.FailedPrecondition);
      return fallback.name;
    }
    if (!images.some((i) => i.name === requested)) {
      throw new ConnectError(`image ${JSON.stringify(requested)} not found`, Code.NotFound);
    }
    return requested;
  };

  /** The id of a pool entry reserved for this create, or "" (none, or the vmm could not say). */
  const reservePooled = async (user: AuthenticatedUser, input: CreateSandboxInput): Promise<string> => {
    // Volumes are bound into the bundle before a restore: such creates never use the pool.
    if (input.volumes !== undefined && input.volumes.length > 0) return "";
    try {
      const { id } = await vmm.reservePooledSandbox({
        userId: user.id,
        image: input.image,
        cpus: input.cpus,
        memoryMb: input.memoryMb,
        diskSizeMb: input.diskSizeMb,
      });
      return id;
    } catch (e) {
      logger.warn("pool reservation failed; creating without", { error: ConnectError.from(e).rawMessage });
      return "";
    }
  };

  const existingByName = async (user: AuthenticatedUser, name: string) => {
    if (name === "") return undefined;
    try {
      const { sandbox } = await store.getSandbox({ userId: user.id, sandbox: name });
      // A name lookup may also match an id; idempotency is by name only.
      return sandbox !== undefined && sandbox.name === name ? sandbox : undefined;
    } catch (e) {
      if (ConnectError.from(e).code === Code.NotFound) return undefined;
      throw e;
    }
  };

  return {
    async create(user, input) {
      // Asked at once with the lookups: a sandbox the vmm made ahead of time for this user
      // (docs/templates.md, the ready pool). Its id becomes the row's; given back if this
      // create ends before the vmm is asked to claim it.
      const reservation = reservePooled(user, input);
      const releaseReservation = async () => {
        const id = await reservation;
        if (id !== "") await vmm.releasePooledSandbox({ id }).catch(() => undefined);
      };
      let image: string;
      try {
        const before = await existingByName(user, input.name);
        if (before !== undefined) {
          await releaseReservation();
          return { state: withEngineView(before, undefined), existing: true };
        }
        // Cheap checks against the caller's limits come first, so a request that can never
        // succeed is refused before any image lookup (the store re-checks in its transaction).
        checkPerSandboxLimits(user, input);
        image = await resolveImage(user, input.image);
      } catch (e) {
        await releaseReservation();
        throw e;
      }
      const pooledId = await reservation;
      let row: SandboxRecord | undefined;
      try {
        row = (
          await store.createSandbox({
            userId: user.id,
            ...(pooledId === "" ? {} : { id: pooledId }),
            name: input.name,
            image,
            cpus: input.cpus,
            memoryMb: input.memoryMb,
            diskSizeMb: input.diskSizeMb,
            keepHot: input.keepHot,
            labels: input.labels,
            status: "creating",
          })
        ).sandbox;
      } catch (e) {
        await releaseReservation();
        // Lost a race for the name: the winner's row is the answer.
        if (ConnectError.from(e).code === Code.AlreadyExists) {
          const winner = await existingByName(user, input.name);
          if (winner !== undefined) return { state: withEngineView(winner, undefined), existing: true };
        }
        throw e;
      }
      if (row === undefined) throw new ConnectError("store returned no sandbox", Code.Internal);
      // A crash from here on leaves a `creating` row: the vmm's reconciler completes it from the
      // engine or deletes it once it is older than the create deadline.
      crashPoint("gateway.create.after-row-insert");
      const id = row.id;
      try {
        let secrets: Record<string, string> = {};
        if (input.secrets.length > 0) {
          try {
            secrets = (await store.resolveSecrets({ userId: user.id, names: input.secrets })).values;
          } catch (e) {
            const err = ConnectError.from(e);
            // A missing secret is the caller's mistake (400 in v1), not a missing sandbox.
            if (err.code === Code.NotFound) throw new ConnectError(err.rawMessage, Code.InvalidArgument);
            throw err;
          }
        }
        const volumes =
          input.volumes && input.volumes.length > 0 ? await attachVolumes(user.id, id, input.volumes) : [];
        const { sandbox: sb } = await vmm.createSandbox(
          {
            spec: {
              id,
              name: row.name,
              image: row.image,
              cpus: row.cpus,
              memoryMb: row.memoryMb,
              diskSizeMb: row.diskSizeMb,
              env: input.env,
              secrets,
              files: input.files.map((f) => ({ path: f.guestPath, content: f.content, mode: f.mode })),
              userId: user.id,
              init: input.init,
              volumes,
            },
          },
          { timeoutMs: CREATE_TIMEOUT_MS },
        );
        if (sb === undefined) throw new ConnectError("vmm returned no sandbox", Code.Internal);
        crashPoint("gateway.create.after-vmm-create");
        const updated = await store.updateSandbox({
          userId: user.id,
          sandbox: id,
          status: "running",
          ip: sb.address,
          engineId: sb.id,
          engineMetaJson: JSON.stringify({ engine: sb.engine }),
          thermalState: ThermalState.HOT,
        });
        if (updated.sandbox === undefined) throw new ConnectError("store returned no sandbox", Code.Internal);
        wake.markHot(sb);
        return { state: withEngineView(updated.sandbox, sb), existing: false };
      } catch (e) {
        await rollback(user, id, e);
        throw e;
      }
    },

    async list(user, labels) {
      const [rows, engine] = await Promise.all([
        store.listSandboxes({ userId: user.id, labels }),
        vmm.listSandboxes({ userId: user.id }).then(
          (r) => new Map(r.sandboxes.map((s) => [s.id, s])),
          () => new Map<string, VmmSandbox>(),
        ),
      ]);
      return rows.sandboxes.map((r) => withEngineView(r, engine.get(r.id)));
    },

    async get(user, ref) {
      const record = await getRecord(user, ref);
      return withEngineView(record, await engineView(record.id));
    },

    async resolveId(user, ref) {
      const cached = refs.get(user.id, ref);
      if (cached !== undefined) return cached;
      const record = await getRecord(user, ref);
      refs.set(user.id, ref, record.id);
      return record.id;
    },

    async update(user, ref, update) {
      const record = await getRecord(user, ref);
      const { sandbox } = await store.updateSandbox({
        userId: user.id,
        sandbox: record.id,
        ...(update.name !== undefined ? { name: update.name } : {}),
        ...(update.keepHot !== undefined ? { keepHot: update.keepHot } : {}),
        labelsAdd: update.labelsAdd ?? {},
        labelsRemove: update.labelsRemove ?? [],
      });
      if (sandbox === undefined) throw new ConnectError("store returned no sandbox", Code.Internal);
      if (update.name !== undefined && update.name !== record.name) refs.forget(record.id);
      // keep_hot = true must leave the sandbox hot, not just promise to (v1).
      if (update.keepHot === true) await wake.ensureHot(record.id);
      return withEngineView(sandbox, await engineView(record.id));
    },

    async destroy(user, ref) {
      const record = await getRecord(user, ref);
      refs.forget(record.id);
      wake.forget(record.id);
      // The row says `destroying` before anything is torn down: if this process (or the vmm or
      // the store) dies halfway, the vmm's reconciler finishes the destroy instead of leaving a
      // row that points at nothing.
      if (record.status !== "destroying") {
        await store.updateSandbox({ userId: user.id, sandbox: record.id, status: "destroying" });
      }
      crashPoint("gateway.destroy.after-mark");
      await vmm.destroySandbox({ id: record.id }, { timeoutMs: LIFECYCLE_TIMEOUT_MS });
      crashPoint("gateway.destroy.after-vmm-destroy");
      try {
        const { sandbox } = await store.deleteSandbox({ userId: user.id, sandbox: record.id });
        return sandbox ?? record;
      } catch (e) {
        // The vmm's reconciler finished this destroy first (it was slower than the grace period).
        if (ConnectError.from(e).code === Code.NotFound) return record;
        throw e;
      }
    },

    async stop(user, ref) {
      const record = await getRecord(user, ref);
      wake.markNotHot(record.id);
      const { sandbox: sb } = await vmm.stopSandbox({ id: record.id }, { timeoutMs: LIFECYCLE_TIMEOUT_MS });
      // From here the vmm's event sync writes the row even if this process dies.
      crashPoint("gateway.stop.after-vmm-stop");
      wake.markNotHot(record.id);
      const { sandbox } = await store.updateSandbox({
        userId: user.id,
        sandbox: record.id,
        status: "stopped",
        thermalState: ThermalState.COLD,
      });
      if (sandbox === undefined) throw new ConnectError("store returned no sandbox", Code.Internal);
      if (record.status !== "stopped") await appendEvent("sandbox.stopped", sandbox, { reason: "user" });
      return withEngineView(sandbox, sb);
    },

    async start(user, ref, force) {
      const record = await getRecord(user, ref);
      const { sandbox: sb } = await vmm.startSandbox(
        { id: record.id, force },
        { timeoutMs: LIFECYCLE_TIMEOUT_MS },
      );
      crashPoint("gateway.start.after-vmm-start");
      if (sb !== undefined && sb.thermal === ThermalState.HOT) wake.markHot(sb);
      const { sandbox } = await store.updateSandbox({
        userId: user.id,
        sandbox: record.id,
        status: "running",
        thermalState:
          sb !== undefined && thermalName(sb.thermal) !== undefined ? sb.thermal : ThermalState.HOT,
        ...(sb !== undefined && sb.address !== "" ? { ip: sb.address } : {}),
      });
      if (sandbox === undefined) throw new ConnectError("store returned no sandbox", Code.Internal);
      if (record.status !== "running") await appendEvent("sandbox.started", sandbox, { force });
      return withEngineView(sandbox, sb);
    },
  };
}
