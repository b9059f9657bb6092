import { Code, ConnectError } from "@connectrpc/connect";
import type { SqliteDatabase } from "../adapters/sqlite-database.js";
import type { AddressBook } from "./addresses.js";
import { nowIso } from "./clock.js";
import type { EventLog } from "./events.js";
import { isId, newId, randomHex } from "./ids.js";
import { checkLabels } from "./labels.js";
import { checkName, isUniqueViolation } from "./names.js";
import type { UserDirectory } from "./users.js";

export const SANDBOX_STATUSES = ["creating", "running", "stopped", "unknown", "destroying"] as const;
export const THERMAL_STATES = ["hot", "warm", "cold"] as const;
/** Largest JSON accepted for engine_meta / engine_state. */
export const MAX_ENGINE_JSON_BYTES = 64 * 1024;

export interface SandboxRow {
  id: string;
  user_id: string;
  name: string;
  template_id: string;
  engine_id: string;
  status: string;
  ip: string;
  engine_meta: string;
  engine_state: string;
  cpus: number;
  memory_mb: number;
  disk_size_mb: number;
  image: string;
  labels: string;
  keep_hot: number;
  agent_token: string;
  thermal_state: string;
  thermal_since: string;
  last_activity_at: string;
  created_at: string;
  updated_at: string;
  stopped_at: string | null;
}

/** Who a call acts for: one user (others' rows do not exist for it), or the system. */
export type Scope = { userId: string } | { anyUser: true };

export function scopeOf(userId: string, anyUser: boolean): Scope {
  if (anyUser && userId !== "") {
    throw new ConnectError("give either user_id or any_user, not both", Code.InvalidArgument);
  }
  if (anyUser) return { anyUser: true };
  if (userId === "")
    throw new ConnectError("user_id is required (or any_user for internal callers)", Code.InvalidArgument);
  return { userId };
}

export interface NewSandbox {
  userId: string;
  id?: string;
  name?: string;
  templateId?: string;
  image?: string;
  cpus?: number;
  memoryMb?: number;
  diskSizeMb?: number;
  keepHot?: boolean;
  labels?: Record<string, string>;
  status?: string;
  engineId?: string;
  engineMetaJson?: string;
  engineStateJson?: string;
  agentToken?: string;
  ip?: string;
}

export interface SandboxChanges {
  name?: string;
  keepHot?: boolean;
  labelsAdd?: Record<string, string>;
  labelsRemove?: readonly string[];
  status?: string;
  ip?: string;
  engineId?: string;
  engineMetaJson?: string;
  engineStateJson?: string;
  agentToken?: string;
  thermalState?: string;
  lastActivityAt?: string;
}

export interface SandboxRegistry {
  create(input: NewSandbox): SandboxRow;
  get(scope: Scope, ref: string): SandboxRow;
  list(
    scope: Scope,
    filter?: { labels?: Record<string, string>; statuses?: readonly string[] },
  ): SandboxRow[];
  update(scope: Scope, ref: string, changes: SandboxChanges): SandboxRow;
  delete(scope: Scope, ref: string): SandboxRow;
}

export function createSandboxRegistry(
  db: SqliteDatabase,
  users: UserDirectory,
  events: EventLog,
  addresses: AddressBook,
): SandboxRegistry {
  const byId = db.prepare<[string], SandboxRow>("SELECT * FROM sandboxes WHERE id = ?");
  const byUserAndName = db.prepare<[string, string], SandboxRow>(
    "SELECT * FROM sandboxes WHERE user_id = ? AND name = ?",
  );
  const countForUser = db.prepare<[string], { n: number }>(
    "SELECT count(*) AS n FROM sandboxes WHERE user_id = ?",
  );
  const insert = db.prepare(`INSERT INTO sandboxes
    (id, user_id, name, template_id, engine_id, status, ip, engine_meta, engine_state, cpus, memory_mb,
     disk_size_mb, image, labels, keep_hot, agent_token, thermal_state, thermal_since, last_activity_at,
     created_at, updated_at, stopped_at)
    VALUES (@id, @user_id, @name, @template_id, @engine_id, @status, @ip, @engine_meta, @engine_state, @cpus,
     @memory_mb, @disk_size_mb, @image, @labels, @keep_hot, @agent_token, @thermal_state, @thermal_since,
     @last_activity_at, @created_at, @updated_at, @stopped_at)`);
  const remove = db.prepare("DELETE FROM sandboxes WHERE id = ?");

  /** Id first, then name; a row outside the scope is NotFound, exactly like a missing one. */
  const find = (scope: Scope, ref: string): SandboxRow => {
    let row: SandboxRow | undefined;
    if ("anyUser" in scope) {
      row = isId(ref) ? byId.get(ref) : undefined;
      if (!row) {
        const named = db.prepare<[string], SandboxRow>("SELECT * FROM sandboxes WHERE name = ?").all(ref);
        if (named.length > 1) {
          throw new ConnectError(
            `sandbox name ${JSON.stringify(ref)} is ambiguous across users; use the id`,
            Code.InvalidArgument,
          );
        }
        row = named[0];
      }
    } else {
      const candidate = isId(ref) ? byId.get(ref) : undefined;
      row = candidate?.user_id === scope.userId ? candidate : byUserAndName.get(scope.userId, ref);
    }
    if (!row) throw new ConnectError(`sandbox ${JSON.stringify(ref.slice(0, 80))} not found`, Code.NotFound);
    return row;
  };

  const nameTaken = (name: string): ConnectError =>
    new ConnectError(`name ${JSON.stringify(name)} is already in use`, Code.AlreadyExists);

  const create = db.transaction((input: NewSandbox): SandboxRow => {
    const owner = users.byId(input.userId);
    const name = input.name || `sandbox-${randomHex(6)}`;
    checkName("sandbox", name);
    if (input.id !== undefined && input.id !== "" && !isId(input.id)) {
      throw new ConnectError("sandbox id must be 16 lowercase hex chars", Code.InvalidArgument);
    }
    const cpus = input.cpus || 1;
    const memoryMb = input.memoryMb || 1024;
    if (!(cpus > 0) || cpus > owner.max_cpus_per_sandbox) {
      throw new ConnectError(
        `cpus ${cpus} is over the limit of ${owner.max_cpus_per_sandbox} per sandbox`,
        Code.InvalidArgument,
      );
    }
    if (memoryMb > owner.max_memory_mb_per_sandbox) {
      throw new ConnectError(
        `memory_mb ${memoryMb} is over the limit of ${owner.max_memory_mb_per_sandbox} per sandbox`,
        Code.InvalidArgument,
      );
    }
    const labels = input.labels ?? {};
    checkLabels(labels);
    const status = input.status || "creating";
    checkOneOf("status", status, SANDBOX_STATUSES);
    const engineMeta = checkJsonObject("engine_meta_json", input.engineMetaJson);
    const engineState = checkJsonObject("engine_state_json", input.engineStateJson);
    if (byUserAndName.get(owner.id, name)) throw nameTaken(name);
    const count = countForUser.get(owner.id)?.n ?? 0;
    if (count >= owner.max_sandboxes) {
      throw new ConnectError(
        `sandbox limit reached (${count}/${owner.max_sandboxes})`,
        Code.ResourceExhausted,
      );
    }
    const now = nowIso();
    const row: SandboxRow = {
      id: input.id || newId(),
      user_id: owner.id,
      name,
      template_id: input.templateId ?? "",
      engine_id: input.engineId ?? "",
      status,
      ip: input.ip ?? "",
      engine_meta: engineMeta,
      engine_state: engineState,
      cpus,
      memory_mb: memoryMb,
      disk_size_mb: input.diskSizeMb ?? 0,
      image: input.image || "minimal",
      labels: JSON.stringify(sortKeys(labels)),
      keep_hot: input.keepHot ? 1 : 0,
      agent_token: input.agentToken ?? "",
      thermal_state: "hot",
      thermal_since: now,
      last_activity_at: now,
      created_at: now,
      updated_at: now,
      stopped_at: status === "stopped" ? now : null,
    };
    try {
      insert.run(row);
    } catch (e) {
      if (isUniqueViolation(e)) {
        if (byId.get(row.id))
          throw new ConnectError(`sandbox id ${row.id} already exists`, Code.AlreadyExists);
        throw nameTaken(name);
      }
      throw e;
    }
    events.record("sandbox.created", {
      userId: owner.id,
      sandboxId: row.id,
      meta: {
        name,
        cpus,
        memory_mb: memoryMb,
        image: row.image,
        template_id: row.template_id,
        keep_hot: row.keep_hot === 1,
      },
    });
    return row;
  });

  const update = db.transaction((scope: Scope, ref: string, changes: SandboxChanges): SandboxRow => {
    const row = find(scope, ref);
    const next: SandboxRow = { ...row };
    const publicChanges: Record<string, unknown> = {};
    if (changes.name !== undefined && changes.name !== row.name) {
      checkName("sandbox", changes.name);
      if (byUserAndName.get(row.user_id, changes.name)) throw nameTaken(changes.name);
      next.name = changes.name;
      publicChanges["name"] = changes.name;
    }
    if (changes.keepHot !== undefined && (changes.keepHot ? 1 : 0) !== row.keep_hot) {
      next.keep_hot = changes.keepHot ? 1 : 0;
      publicChanges["keep_hot"] = changes.keepHot;
    }
    if (
      (changes.labelsAdd && Object.keys(changes.labelsAdd).length > 0) ||
      (changes.labelsRemove?.length ?? 0) > 0
    ) {
      const labels = JSON.parse(row.labels) as Record<string, string>;
      for (const k of changes.labelsRemove ?? []) delete labels[k];
      Object.assign(labels, changes.labelsAdd ?? {});
      checkLabels(labels);
      next.labels = JSON.stringify(sortKeys(labels));
      if (next.labels !== row.labels) publicChanges["labels"] = labels;
    }
    const now = nowIso();
    // `destroying` is final: only DeleteSandbox ends it. The vmm's store sync, the thermal policy
    // and the gateway's wake write a status they read or derived earlier; one that lands after
    // the destroy mark would otherwise turn the row back into a live sandbox, and a crash of the
    // destroyer then leaves it unfinished forever (the reconciler only finishes `destroying` rows).
    if (changes.status !== undefined) checkOneOf("status", changes.status, SANDBOX_STATUSES);
    if (changes.status !== undefined && changes.status !== row.status && row.status !== "destroying") {
      next.status = changes.status;
      next.stopped_at = changes.status === "stopped" ? now : null;
    }
    if (changes.thermalState !== undefined && changes.thermalState !== row.thermal_state) {
      checkOneOf("thermal_state", changes.thermalState, THERMAL_STATES);
      next.thermal_state = changes.thermalState;
      next.thermal_since = now;
    }
    if (changes.ip !== undefined) next.ip = changes.ip;
    if (changes.engineId !== undefined) next.engine_id = changes.engineId;
    if (changes.agentToken !== undefined) next.agent_token = changes.agentToken;
    if (changes.engineMetaJson !== undefined)
      next.engine_meta = checkJsonObject("engine_meta_json", changes.engineMetaJson);
    if (changes.engineStateJson !== undefined) {
      next.engine_state = checkJsonObject("engine_state_json", changes.engineStateJson);
    }
    if (changes.lastActivityAt !== undefined) next.last_activity_at = changes.lastActivityAt;
    next.updated_at = now;
    try {
      db.prepare(`UPDATE sandboxes SET name = @name, keep_hot = @keep_hot, labels = @labels, status = @status,
        stopped_at = @stopped_at, thermal_state = @thermal_state, thermal_since = @thermal_since, ip = @ip,
        engine_id = @engine_id, agent_token = @agent_token, engine_meta = @engine_meta,
        engine_state = @engine_state, last_activity_at = @last_activity_at, updated_at = @updated_at
        WHERE id = @id`).run(next);
    } catch (e) {
      if (isUniqueViolation(e)) throw nameTaken(next.name);
      throw e;
    }
    if (Object.keys(publicChanges).length > 0) {
      events.record("sandbox.updated", { userId: row.user_id, sandboxId: row.id, meta: publicChanges });
    }
    return next;
  });

  const destroy = db.transaction((scope: Scope, ref: string): SandboxRow => {
    const row = find(scope, ref);
    // Attachments, publish rules and the shell token go by ON DELETE CASCADE.
    addresses.release(row.id);
    remove.run(row.id);
    events.record("sandbox.destroyed", { userId: row.user_id, sandboxId: row.id, meta: { name: row.name } });
    return row;
  });

  return {
    create: (input) => create.immediate(input),
    get: find,
    list(scope, filter = {}) {
      const where: string[] = [];
      const args: string[] = [];
      if ("userId" in scope) {
        where.push("user_id = ?");
        args.push(scope.userId);
      }
      const statuses = filter.statuses ?? [];
      if (statuses.length > 0) {
        where.push(`status IN (${statuses.map(() => "?").join(", ")})`);
        args.push(...statuses);
      }
      for (const [k, v] of Object.entries(filter.labels ?? {})) {
        where.push("json_extract(labels, ?) = ?");
        args.push(`$."${k.replaceAll('"', "")}"`, v);
      }
      const sql = `SELECT * FROM sandboxes ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY created_at, id`;
      return db.prepare(sql).all(...args) as SandboxRow[];
    },
    update: (scope, ref, changes) => update.immediate(scope, ref, changes),
    delete: (scope, ref) => destroy.immediate(scope, ref),
  };
}

function checkOneOf(field: string, value: string, allowed: readonly string[]): void {
  if (!allowed.includes(value)) {
    throw new ConnectError(
      `invalid ${field} ${JSON.stringify(value.slice(0, 40))} (one of: ${allowed.join(", ")})`,
      Code.InvalidArgument,
    );
  }
}

function checkJsonObject(field: string, json: string | undefined): string {
  if (json === undefined || json === "") return "{}";
  if (Buffer.byteLength(json) > MAX_ENGINE_JSON_BYTES) {
    throw new ConnectError(
      `${field} is ${Buffer.byteLength(json)} bytes, more than the ${MAX_ENGINE_JSON_BYTES} allowed`,
      Code.InvalidArgument,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new ConnectError(`${field} is not valid JSON`, Code.InvalidArgument);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ConnectError(`${field} must be a JSON object`, Code.InvalidArgument);
  }
  return json;
}

function sortKeys(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
