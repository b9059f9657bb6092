import { randomBytes } from "node:crypto";
import { createUndoStack } from "@bhatti/runtime";
import type { ImageRecord } from "../../../adapters/image-registry.js";
import type { SandboxSpec } from "../../../engine/engine.js";
import { DEFAULT_CPUS, DEFAULT_MEMORY_MB, validateSpec } from "../../../engine/spec-validation.js";
import type { GvisorContext } from "../engine-context.js";
import type { GvisorSandboxRecord } from "../sandbox-record.js";
import type { Templates } from "../templates/templates.js";
import { bootPoolEntry } from "./pool-boot.js";

/**
 * A pool of ready sandboxes (docs/templates.md, "The ready pool"): sandboxes booted ahead of
 * time as claimable agents (like a template's, not checkpointed), frozen, that a create claims
 * instead of restoring the template.
 *
 * Every user has a network of their own (a /24, a bridge, a resolver), and gVisor takes a
 * sandbox's addresses only at restore. So an entry is made for one user and one image, on that
 * user's network, after that user created a sandbox of that image: the pool serves the creates
 * that follow. An entry has never run anything of a user's: it is a freshly booted agent until
 * the claim, and it is never handed out twice (a destroyed sandbox is destroyed).
 *
 * Entries live under `sandboxes/<id>` without a record (the record is written at the claim),
 * so nothing lists, adopts or watches them; a restarted vmm removes them as unfinished creates.
 */
export interface ReadyPool {
  /**
   * Reserves a ready entry of this user and image for a create of this shape, or undefined.
   * The create must then use the returned id; a reservation not claimed within
   * `RESERVATION_MS` is destroyed.
   */
  reserve(request: PoolRequest): string | undefined;
  /** Gives a reservation back unused (the create did not happen). Unknown ids are fine. */
  release(id: string): void;
  /**
   * The reserved entry `spec.id` names, taken out of the pool: the entry if `spec` can claim it,
   * or why not (the caller then tears it down and creates normally); undefined if `spec.id` is
   * not a reserved entry.
   */
  take(
    spec: SandboxSpec,
    image: ImageRecord,
    diskSizeMb: number,
  ): { entry: PoolEntry } | { unusable: string } | undefined;
  /** Removes entry `id` if the pool has it (a destroy of a reserved id). */
  discard(id: string, why: string): Promise<void>;
  /** True if `id` is a reserved entry (the create's "already exists" check lets it through). */
  isReserved(id: string): boolean;
  /** Resolves once a removal of `id` that is in progress has finished. */
  settled(id: string): Promise<void>;
  /** A create of this user and image succeeded: keep an entry ready for their next one. */
  wanted(userId: string, image: string): void;
  /** Starts a fill if one is due and no create is in flight (called when a create ends). */
  kick(): void;
  /** `ready=N,reserved=N,filling=N`, for Health facts. */
  describe(): string;
  /** Resolves once no fill is running (tests, shutdown). */
  idle(): Promise<void>;
  /** Stops filling and removes every entry. */
  close(): Promise<void>;
}

export interface PoolRequest {
  userId: string;
  image: string;
  cpus: number;
  memoryMb: number;
  diskSizeMb: number;
}

export interface PoolEntry {
  id: string;
  userId: string;
  image: string;
  /** The record as restored: the entry's address and network; name, token and hostname are replaced at the claim. */
  record: GvisorSandboxRecord;
  /** The token the entry's agent answers until it is claimed (its own, not the template's). */
  templateToken: string;
  templateKey: string;
}

export interface ReadyPoolOptions {
  /** Entries kept at most, over all users and images; 0 disables the pool. */
  size: number;
  /** An entry nobody claimed for this long is removed, and its user's demand forgotten. */
  idleMs: number;
}

/** How long a reservation waits for its create (the gateway inserts the row in between). */
export const RESERVATION_MS = 60_000;

type EntryState =
  | { kind: "ready" }
  | { kind: "reserved"; timer: NodeJS.Timeout }
  | { kind: "removing"; done: Promise<void> };

interface Slot {
  entry: PoolEntry;
  state: EntryState;
  idleTimer: NodeJS.Timeout;
}

const keyOf = (userId: string, image: string) => `${userId}\0${image}`;

export function createReadyPool(
  ctx: GvisorContext,
  templates: Templates,
  options: ReadyPoolOptions,
): ReadyPool {
  const { log, cgroups } = ctx;
  const slots = new Map<string, Slot>();
  /** When each user last created a sandbox of each image: what the pool fills for. */
  const demand = new Map<string, number>();
  let filling: Promise<void> | undefined;
  let closed = false;
  const defaultDiskMb = ctx.options.defaultDiskSizeMb ?? 4096;

  const remove = (slot: Slot, why: string): Promise<void> => {
    if (slot.state.kind === "removing") return slot.state.done;
    if (slot.state.kind === "reserved") clearTimeout(slot.state.timer);
    clearTimeout(slot.idleTimer);
    const { id } = slot.entry;
    ctx.pooled.delete(id);
    log?.info("pool entry removed", { sandbox: id, image: slot.entry.image, reason: why });
    const done = ctx.teardown(id, ctx.layoutOf(id)).finally(() => {
      slots.delete(id);
      kick();
    });
    slot.state = { kind: "removing", done };
    return done;
  };

  /** The live entries of one user and image (ready or reserved). */
  const countFor = (key: string) =>
    [...slots.values()].filter(
      (s) => s.state.kind !== "removing" && keyOf(s.entry.userId, s.entry.image) === key,
    ).length;
  const liveCount = () => [...slots.values()].filter((s) => s.state.kind !== "removing").length;

  /** The most recent demand that has no live entry, if it is still fresh. */
  const nextWanted = (now: number): { userId: string; image: string } | undefined => {
    let best: { key: string; at: number } | undefined;
    for (const [key, at] of demand) {
      if (now - at > options.idleMs) {
        demand.delete(key);
        continue;
      }
      if (countFor(key) > 0) continue;
      if (best === undefined || at > best.at) best = { key, at };
    }
    if (best === undefined) return undefined;
    const [userId = "", image = ""] = best.key.split("\0");
    return { userId, image };
  };

  /** One entry for `userId` and `image`: booted, running commands, then frozen. */
  const fill = async (userId: string, image: ImageRecord): Promise<void> => {
    const id = randomBytes(8).toString("hex");
    const spec = validateSpec({
      id,
      name: `pool-${id.slice(0, 6)}`,
      image: image.name,
      cpus: DEFAULT_CPUS,
      memoryMb: DEFAULT_MEMORY_MB,
      pidsLimit: 0,
      env: {},
      secrets: {},
      files: [],
      hostname: "",
      userId,
    });
    const pick = templates.pick(spec, image, defaultDiskMb);
    if (!("template" in pick)) return;
    // An entry is admitted like a create, counting the other entries too: the pool only fills
    // where a user's sandbox would still fit beside it.
    const admitted = ctx.admission.admit(
      id,
      "create",
      { memoryMb: spec.memoryMb, diskMb: defaultDiskMb },
      ctx.committedMemoryMb(true),
    );
    const undo = createUndoStack();
    const t0 = performance.now();
    try {
      const r = await bootPoolEntry(ctx, spec, image, defaultDiskMb, undo);
      await cgroups.freeze(id);
      undo.commit();
      const entry: PoolEntry = {
        id,
        userId,
        image: image.name,
        record: r,
        templateToken: r.token,
        templateKey: pick.template.m.key,
      };
      const slot: Slot = {
        entry,
        state: { kind: "ready" },
        idleTimer: setTimeout(() => void remove(slot, "not claimed in time"), options.idleMs),
      };
      slot.idleTimer.unref();
      slots.set(id, slot);
      ctx.pooled.set(id, r);
      log?.info("pool entry ready", {
        sandbox: id,
        image: image.name,
        ms: Math.round(performance.now() - t0),
      });
      if (closed) await remove(slot, "pool closed");
    } catch (e) {
      for (const f of await undo.rollback()) {
        log?.warn(`release: ${f.what} failed`, { sandbox: id, error: f.error });
      }
      throw e;
    } finally {
      admitted.release();
    }
  };

  function kick(): void {
    if (closed || filling !== undefined || options.size <= 0) return;
    // Creates come first: a fill competes with them for the CPUs and the disk.
    if (ctx.pending.size > 0) return;
    if (liveCount() >= options.size) return;
    const want = nextWanted(Date.now());
    if (want === undefined) return;
    const image = ctx.images.get(want.image);
    if (image === undefined) {
      demand.delete(keyOf(want.userId, want.image));
      return;
    }
    filling = fill(want.userId, image)
      .catch((e: unknown) => {
        // Not retried until the next create of this user and image asks again.
        demand.delete(keyOf(want.userId, want.image));
        log?.warn("pool fill failed", { image: want.image, error: (e as Error).message });
      })
      .finally(() => {
        filling = undefined;
        kick();
      });
  }

  /** An entry whose sandbox died (its runsc killed, its cgroup emptied) is never handed out. */
  const alive = (id: string) => {
    try {
      return cgroups.pids(id).length > 0;
    } catch {
      return false;
    }
  };

  return {
    reserve(request) {
      if (closed || options.size <= 0) return undefined;
      const disk = request.diskSizeMb || defaultDiskMb;
      const cpus = request.cpus || DEFAULT_CPUS;
      const memoryMb = request.memoryMb || DEFAULT_MEMORY_MB;
      const key = keyOf(request.userId, request.image);
      for (const slot of slots.values()) {
        if (slot.state.kind !== "ready" || keyOf(slot.entry.userId, slot.entry.image) !== key) continue;
        const r = slot.entry.record;
        if (r.cpus !== cpus || r.memoryMb !== memoryMb || disk !== defaultDiskMb) return undefined;
        if (!alive(slot.entry.id)) {
          void remove(slot, "its sandbox died");
          continue;
        }
        const timer = setTimeout(() => void remove(slot, "reservation not claimed"), RESERVATION_MS);
        timer.unref();
        slot.state = { kind: "reserved", timer };
        return slot.entry.id;
      }
      return undefined;
    },

    release(id) {
      const slot = slots.get(id);
      if (slot?.state.kind !== "reserved") return;
      clearTimeout(slot.state.timer);
      slot.state = { kind: "ready" };
    },

    take(spec, image, diskSizeMb) {
      const slot = slots.get(spec.id);
      if (slot?.state.kind !== "reserved") return undefined;
      clearTimeout(slot.state.timer);
      clearTimeout(slot.idleTimer);
      slots.delete(spec.id);
      ctx.pooled.delete(spec.id);
      const e = slot.entry;
      const r = e.record;
      const pick = templates.pick(spec, image, diskSizeMb);
      if (spec.userId !== e.userId || image.name !== e.image)
        return { unusable: "made for another user or image" };
      if (spec.cpus !== r.cpus || spec.memoryMb !== r.memoryMb || spec.pidsLimit !== r.pidsLimit)
        return { unusable: "another shape" };
      if (!("template" in pick)) return { unusable: pick.reason };
      if (pick.template.m.key !== e.templateKey) return { unusable: "its template is outdated" };
      return { entry: e };
    },

    async discard(id, why) {
      const slot = slots.get(id);
      if (slot !== undefined) await remove(slot, why);
    },

    isReserved: (id) => slots.get(id)?.state.kind === "reserved",

    settled(id) {
      const state = slots.get(id)?.state;
      return state?.kind === "removing" ? state.done : Promise.resolve();
    },

    wanted(userId, image) {
      if (options.size <= 0) return;
      demand.set(keyOf(userId, image), Date.now());
      kick();
    },

    kick,

    describe() {
      const n = { ready: 0, reserved: 0 };
      for (const s of slots.values()) if (s.state.kind !== "removing") n[s.state.kind]++;
      return `ready=${n.ready},reserved=${n.reserved},filling=${filling === undefined ? 0 : 1}`;
    },

    async idle() {
      while (filling !== undefined) await filling;
    },

    async close() {
      closed = true;
      while (filling !== undefined) await filling;
      await Promise.all([...slots.values()].map((s) => remove(s, "pool closed")));
    },
  };
}
