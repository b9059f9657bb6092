import { Code, ConnectError } from "@connectrpc/connect";
import type { SqliteDatabase } from "../adapters/sqlite-database.js";
import type { AddressBook } from "./addresses.js";
import { nowIso } from "./clock.js";
import type { EventLog } from "./events.js";
import { isId, isWellFormedApiKey, newApiKey, newId, sha256Hex } from "./ids.js";
import { checkName, isUniqueViolation } from "./names.js";

export const LIMIT_FIELDS = [
  "max_sandboxes",
  "max_cpus_per_sandbox",
  "max_memory_mb_per_sandbox",
  "max_volume_storage_mb",
  "max_snapshots",
  "max_images",
  "creates_per_minute",
  "execs_per_minute",
] as const;
export type LimitField = (typeof LIMIT_FIELDS)[number];
export type UserLimits = Record<LimitField, number>;

export const DEFAULT_LIMITS: UserLimits = {
  max_sandboxes: 5,
  max_cpus_per_sandbox: 4,
  max_memory_mb_per_sandbox: 4096,
  max_volume_storage_mb: 20480,
  max_snapshots: 5,
  max_images: 10,
  creates_per_minute: 10,
  execs_per_minute: 120,
};

/** Upper bounds that catch typos (a limit of 4e9 CPUs) without getting in anyone's way. */
const LIMIT_CEILINGS: UserLimits = {
  max_sandboxes: 10_000,
  max_cpus_per_sandbox: 1024,
  max_memory_mb_per_sandbox: 4 * 1024 * 1024,
  max_volume_storage_mb: 1024 * 1024 * 1024,
  max_snapshots: 100_000,
  max_images: 100_000,
  creates_per_minute: 100_000,
  execs_per_minute: 1_000_000,
};

export interface UserRow extends UserLimits {
  id: string;
  name: string;
  is_admin: number;
  created_at: string;
  subnet_index: number | null;
}

export interface UserWithKey {
  user: UserRow;
  apiKey: string;
}

export interface AuthFailureContext {
  remoteAddr?: string;
  path?: string;
}

export interface UserDirectory {
  /** The user of a key, or Unauthenticated (and an auth.failed event). */
  authenticate(apiKey: string, context?: AuthFailureContext): UserRow;
  /** The acting user if it is an admin, else PermissionDenied. */
  requireAdmin(actingUserId: string): UserRow;
  /** An existing user by id (NotFound otherwise). */
  byId(userId: string): UserRow;
  create(
    actingUserId: string,
    input: { name: string; isAdmin: boolean; limits: Partial<UserLimits> },
  ): UserWithKey;
  /** Admins may read anyone; others only themselves (anyone else is NotFound). */
  get(actingUserId: string, ref: string): UserRow;
  list(actingUserId: string): { user: UserRow; sandboxCount: number }[];
  rotateKey(actingUserId: string, ref: string): UserWithKey & { revokedKeySha256: string };
  updateLimits(actingUserId: string, ref: string, limits: Partial<UserLimits>): UserRow;
  delete(actingUserId: string, ref: string): { revokedKeySha256: string };
  /**
   * First start: creates the `admin` user if there are no users, handing its key to `deliver`
   * inside the transaction (so a failed delivery leaves no admin whose key nobody has).
   */
  ensureFirstAdmin(deliver: (apiKey: string) => void): UserRow | undefined;
}

const userColumns = `u.id, u.name, u.is_admin, u.created_at, ${LIMIT_FIELDS.map((f) => `u.${f}`).join(", ")}, s.subnet_index`;
const fromUsers = "FROM users u LEFT JOIN user_subnets s ON s.user_id = u.id";

export function createUserDirectory(
  db: SqliteDatabase,
  events: EventLog,
  addresses: AddressBook,
): UserDirectory {
  const byKeyHash = db.prepare<[string], UserRow>(
    `SELECT ${userColumns} ${fromUsers} WHERE u.api_key_hash = ?`,
  );
  const byIdStmt = db.prepare<[string], UserRow>(`SELECT ${userColumns} ${fromUsers} WHERE u.id = ?`);
  const byName = db.prepare<[string], UserRow>(`SELECT ${userColumns} ${fromUsers} WHERE u.name = ?`);
  const keyHashOf = db.prepare<[string], { api_key_hash: string }>(
    "SELECT api_key_hash FROM users WHERE id = ?",
  );
  const listAll = db.prepare<[], UserRow & { sandbox_count: number }>(
    `SELECT ${userColumns}, (SELECT count(*) FROM sandboxes x WHERE x.user_id = u.id) AS sandbox_count ${fromUsers} ORDER BY u.created_at, u.name`,
  );
  const countUsers = db.prepare<[], { n: number }>("SELECT count(*) AS n FROM users");
  const insertUser = db.prepare(
    `INSERT INTO users (id, name, api_key_hash, is_admin, created_at, ${LIMIT_FIELDS.join(", ")})
     VALUES (@id, @name, @api_key_hash, @is_admin, @created_at, ${LIMIT_FIELDS.map((f) => `@${f}`).join(", ")})`,
  );
  const setKey = db.prepare("UPDATE users SET api_key_hash = ?, key_rotated_at = ? WHERE id = ?");
  const ownedCounts = db.prepare<
    { id: string },
    Record<"sandboxes" | "secrets" | "volumes" | "images" | "snapshots", number>
  >(
    `SELECT (SELECT count(*) FROM sandboxes WHERE user_id = @id) AS sandboxes,
            (SELECT count(*) FROM secrets WHERE user_id = @id) AS secrets,
            (SELECT count(*) FROM volumes WHERE user_id = @id) AS volumes,
            (SELECT count(*) FROM images WHERE user_id = @id) AS images,
            (SELECT count(*) FROM snapshots WHERE user_id = @id) AS snapshots`,
  );
  const deleteUser = db.prepare("DELETE FROM users WHERE id = ?");

  const byIdOrThrow = (userId: string): UserRow => {
    const row = userId === "" ? undefined : byIdStmt.get(userId);
    if (!row) throw new ConnectError("user not found", Code.NotFound);
    return row;
  };

  const requireAdmin = (actingUserId: string): UserRow => {
    const actor = actingUserId === "" ? undefined : byIdStmt.get(actingUserId);
    if (!actor?.is_admin) throw new ConnectError("admin privileges required", Code.PermissionDenied);
    return actor;
  };

  const resolve = (ref: string): UserRow => {
    const row = (isId(ref) ? byIdStmt.get(ref) : undefined) ?? byName.get(ref);
    if (!row) throw new ConnectError(`user ${JSON.stringify(ref.slice(0, 80))} not found`, Code.NotFound);
    return row;
  };

  const insert = (name: string, isAdmin: boolean, limits: Partial<UserLimits>): UserWithKey => {
    checkName("user", name);
    const merged = { ...DEFAULT_LIMITS, ...checkLimits(limits) };
    const apiKey = newApiKey();
    const id = newId();
    try {
      insertUser.run({
        id,
        name,
        api_key_hash: sha256Hex(apiKey),
        is_admin: isAdmin ? 1 : 0,
        created_at: nowIso(),
        ...merged,
      });
    } catch (e) {
      if (isUniqueViolation(e)) {
        throw new ConnectError(`user name ${JSON.stringify(name)} is already in use`, Code.AlreadyExists);
      }
      throw e;
    }
    events.record("user.created", { userId: id, meta: { name, is_admin: isAdmin } });
    return { user: byIdOrThrow(id), apiKey };
  };

  return {
    authenticate(apiKey, context = {}) {
      const row = isWellFormedApiKey(apiKey) ? byKeyHash.get(sha256Hex(apiKey)) : undefined;
      if (!row) {
        // Never the key itself: only where the attempt came from. One row per source address
        // per minute with a count, so a flood of wrong keys is not a flood of fsynced rows.
        const remoteAddr = context.remoteAddr?.slice(0, 128) ?? "";
        events.recordCounted("auth.failed", remoteAddr, {
          reason: apiKey === "" ? "missing" : isWellFormedApiKey(apiKey) ? "unknown key" : "malformed key",
          ...(remoteAddr !== "" ? { remote_addr: remoteAddr } : {}),
          ...(context.path ? { path: context.path.slice(0, 512) } : {}),
        });
        throw new ConnectError("invalid api key", Code.Unauthenticated);
      }
      return row;
    },
    requireAdmin,
    byId: byIdOrThrow,
    create: (actingUserId, input) =>
      db
        .transaction(() => {
          requireAdmin(actingUserId);
          return insert(input.name, input.isAdmin, input.limits);
        })
        .immediate(),
    get(actingUserId, ref) {
      const actor = byIdOrThrow(actingUserId);
      if (actor.is_admin) return resolve(ref);
      if (ref === actor.id || ref === actor.name) return actor;
      throw new ConnectError(`user ${JSON.stringify(ref.slice(0, 80))} not found`, Code.NotFound);
    },
    list(actingUserId) {
      requireAdmin(actingUserId);
      return listAll.all().map(({ sandbox_count, ...user }) => ({ user, sandboxCount: sandbox_count }));
    },
    rotateKey: (actingUserId, ref) =>
      db
        .transaction(() => {
          const actor = byIdOrThrow(actingUserId);
          const target = actor.is_admin
            ? resolve(ref)
            : ref === actor.id || ref === actor.name
              ? actor
              : undefined;
          if (!target)
            throw new ConnectError(`user ${JSON.stringify(ref.slice(0, 80))} not found`, Code.NotFound);
          const revokedKeySha256 = keyHashOf.get(target.id)?.api_key_hash ?? "";
          const apiKey = newApiKey();
          setKey.run(sha256Hex(apiKey), nowIso(), target.id);
          events.record("user.key_rotated", { userId: target.id, meta: { by: actor.id } });
          return { user: target, apiKey, revokedKeySha256 };
        })
        .immediate(),
    updateLimits: (actingUserId, ref, limits) =>
      db
        .transaction(() => {
          requireAdmin(actingUserId);
          const target = resolve(ref);
          const changes = checkLimits(limits);
          const fields = Object.keys(changes) as LimitField[];
          if (fields.length > 0) {
            db.prepare(`UPDATE users SET ${fields.map((f) => `${f} = @${f}`).join(", ")} WHERE id = @id`).run(
              {
                ...changes,
                id: target.id,
              },
            );
            events.record("user.limits_updated", { userId: target.id, meta: changes });
          }
          return byIdOrThrow(target.id);
        })
        .immediate(),
    delete: (actingUserId, ref) =>
      db
        .transaction(() => {
          const actor = requireAdmin(actingUserId);
          const target = resolve(ref);
          if (target.id === actor.id) {
            throw new ConnectError("refusing to delete the calling admin", Code.FailedPrecondition);
          }
          const owned = Object.entries(ownedCounts.get({ id: target.id }) ?? {}).filter(([, n]) => n > 0);
          if (owned.length > 0) {
            throw new ConnectError(
              `user ${target.name} still has ${owned.map(([kind, n]) => `${n} ${kind}`).join(", ")}; delete them first`,
              Code.FailedPrecondition,
            );
          }
          const revokedKeySha256 = keyHashOf.get(target.id)?.api_key_hash ?? "";
          addresses.forgetUser(target.id);
          db.prepare("DELETE FROM image_shares WHERE user_id = ?").run(target.id);
          db.prepare("DELETE FROM tasks WHERE user_id = ?").run(target.id);
          deleteUser.run(target.id);
          events.record("user.deleted", { userId: target.id, meta: { name: target.name, by: actor.id } });
          return { revokedKeySha256 };
        })
        .immediate(),
    ensureFirstAdmin: (deliver) =>
      db
        .transaction(() => {
          if ((countUsers.get()?.n ?? 0) > 0) return undefined;
          const { user, apiKey } = insert("admin", true, {});
          deliver(apiKey);
          return user;
        })
        .immediate(),
  };
}

function checkLimits(limits: Partial<UserLimits>): Partial<UserLimits> {
  const out: Partial<UserLimits> = {};
  for (const field of LIMIT_FIELDS) {
    const value = limits[field];
    if (value === undefined) continue;
    if (!Number.isInteger(value) || value < 1 || value > LIMIT_CEILINGS[field]) {
      throw new ConnectError(
        `${field} must be an integer between 1 and ${LIMIT_CEILINGS[field]} (got ${value})`,
        Code.InvalidArgument,
      );
    }
    out[field] = value;
  }
  return out;
}
