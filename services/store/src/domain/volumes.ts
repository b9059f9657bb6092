import { posix } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import type { SqliteDatabase } from "../adapters/sqlite-database.js";
import { nowIso } from "./clock.js";
import type { EventLog } from "./events.js";
import { isId, newId } from "./ids.js";
import { checkName, isUniqueViolation } from "./names.js";
import type { SandboxRegistry } from "./sandboxes.js";
import type { UserDirectory } from "./users.js";

export interface VolumeRow {
  id: string;
  user_id: string;
  name: string;
  size_mb: number;
  file_path: string;
  status: string;
  created_at: string;
}

export interface AttachmentRow {
  volume_id: string;
  sandbox_id: string;
  mount: string;
  read_only: number;
  attached_at: string;
}

export type VolumeWithAttachments = VolumeRow & { attachments: AttachmentRow[] };

/** Mount points a volume may never cover (as in v1). */
const FORBIDDEN_MOUNTS = new Set([
  "/",
  "/proc",
  "/sys",
  "/dev",
  "/dev/pts",
  "/run",
  "/tmp",
  "/etc",
  "/bin",
  "/sbin",
  "/lib",
  "/lib64",
  "/usr",
  "/usr/local/bin",
  "/boot",
  "/root",
]);
const MAX_VOLUME_MB = 16 * 1024 * 1024;

export function checkMountPath(mount: string): void {
  if (!mount.startsWith("/") || mount.split("/").includes("..")) {
    throw new ConnectError(
      `mount path ${JSON.stringify(mount)} must be absolute without ".."`,
      Code.InvalidArgument,
    );
  }
  const normalized = posix.normalize(mount).replace(/\/+$/, "") || "/";
  if (FORBIDDEN_MOUNTS.has(normalized)) {
    throw new ConnectError(`mount path ${normalized} is reserved`, Code.InvalidArgument);
  }
}

export interface VolumeRegistry {
  create(userId: string, input: { name: string; sizeMb: number; filePath?: string }): VolumeWithAttachments;
  get(userId: string, ref: string): VolumeWithAttachments;
  list(userId: string): VolumeWithAttachments[];
  update(
    userId: string,
    ref: string,
    changes: { status?: string; sizeMb?: number; filePath?: string },
  ): VolumeWithAttachments;
  delete(userId: string, ref: string): VolumeWithAttachments;
  attach(
    userId: string,
    ref: string,
    sandboxRef: string,
    mount: string,
    readOnly: boolean,
  ): VolumeWithAttachments;
  detach(userId: string, ref: string, sandboxRef: string): boolean;
}

export function createVolumeRegistry(
  db: SqliteDatabase,
  users: UserDirectory,
  sandboxes: SandboxRegistry,
  events: EventLog,
): VolumeRegistry {
  const byId = db.prepare<[string, string], VolumeRow>("SELECT * FROM volumes WHERE id = ? AND user_id = ?");
  const byName = db.prepare<[string, string], VolumeRow>(
    "SELECT * FROM volumes WHERE user_id = ? AND name = ?",
  );
  const listForUser = db.prepare<[string], VolumeRow>(
    "SELECT * FROM volumes WHERE user_id = ? ORDER BY name",
  );
  const attachmentsOf = db.prepare<[string], AttachmentRow>(
    "SELECT * FROM volume_attachments WHERE volume_id = ? ORDER BY attached_at",
  );
  const usedMb = db.prepare<[string], { mb: number }>(
    "SELECT coalesce(sum(size_mb), 0) AS mb FROM volumes WHERE user_id = ?",
  );
  const insert = db.prepare(
    "INSERT INTO volumes (id, user_id, name, size_mb, file_path, status, created_at) VALUES (@id, @user_id, @name, @size_mb, @file_path, @status, @created_at)",
  );
  const mountTaken = db.prepare<[string, string], { volume_id: string }>(
    "SELECT volume_id FROM volume_attachments WHERE sandbox_id = ? AND mount = ?",
  );

  const withAttachments = (v: VolumeRow): VolumeWithAttachments => ({
    ...v,
    attachments: attachmentsOf.all(v.id),
  });

  const find = (userId: string, ref: string): VolumeRow => {
    const row = (isId(ref) ? byId.get(ref, userId) : undefined) ?? byName.get(userId, ref);
    if (!row) throw new ConnectError(`volume ${JSON.stringify(ref.slice(0, 80))} not found`, Code.NotFound);
    return row;
  };

  const checkQuota = (userId: string, extraMb: number) => {
    const limit = users.byId(userId).max_volume_storage_mb;
    const used = usedMb.get(userId)?.mb ?? 0;
    if (used + extraMb > limit) {
      throw new ConnectError(
        `volume storage limit reached (${used} MB used + ${extraMb} MB > ${limit} MB)`,
        Code.ResourceExhausted,
      );
    }
  };

  const checkSize = (sizeMb: number) => {
    if (!Number.isInteger(sizeMb) || sizeMb < 1 || sizeMb > MAX_VOLUME_MB) {
      throw new ConnectError(`size_mb must be between 1 and ${MAX_VOLUME_MB}`, Code.InvalidArgument);
    }
  };

  return {
    create: (userId, input) =>
      db
        .transaction(() => {
          users.byId(userId);
          checkName("volume", input.name);
          checkSize(input.sizeMb);
          if (byName.get(userId, input.name)) {
            throw new ConnectError(`volume ${JSON.stringify(input.name)} already exists`, Code.AlreadyExists);
          }
          checkQuota(userId, input.sizeMb);
          const row: VolumeRow = {
            id: newId(),
            user_id: userId,
            name: input.name,
            size_mb: input.sizeMb,
            file_path: input.filePath ?? "",
            status: "creating",
            created_at: nowIso(),
          };
          try {
            insert.run(row);
          } catch (e) {
            if (isUniqueViolation(e)) {
              throw new ConnectError(
                `volume ${JSON.stringify(input.name)} already exists`,
                Code.AlreadyExists,
              );
            }
            throw e;
          }
          events.record("volume.created", { userId, meta: { name: row.name, size_mb: row.size_mb } });
          return withAttachments(row);
        })
        .immediate(),
    get: (userId, ref) => withAttachments(find(userId, ref)),
    list: (userId) => listForUser.all(userId).map(withAttachments),
    update: (userId, ref, changes) =>
      db
        .transaction(() => {
          const row = { ...find(userId, ref) };
          if (changes.status !== undefined) {
            if (changes.status !== "creating" && changes.status !== "ready") {
              throw new ConnectError("volume status must be creating or ready", Code.InvalidArgument);
            }
            row.status = changes.status;
          }
          if (changes.sizeMb !== undefined && changes.sizeMb !== row.size_mb) {
            checkSize(changes.sizeMb);
            if (changes.sizeMb < row.size_mb) {
              throw new ConnectError(
                `volumes only grow (${row.size_mb} MB -> ${changes.sizeMb} MB)`,
                Code.InvalidArgument,
              );
            }
            checkQuota(userId, changes.sizeMb - row.size_mb);
            row.size_mb = changes.sizeMb;
          }
          if (changes.filePath !== undefined) row.file_path = changes.filePath;
          db.prepare(
            "UPDATE volumes SET status = @status, size_mb = @size_mb, file_path = @file_path WHERE id = @id",
          ).run(row);
          return withAttachments(row);
        })
        .immediate(),
    delete: (userId, ref) =>
      db
        .transaction(() => {
          const row = withAttachments(find(userId, ref));
          if (row.attachments.length > 0) {
            throw new ConnectError(
              `volume ${row.name} is attached to ${row.attachments.length} sandbox(es); detach it first`,
              Code.FailedPrecondition,
            );
          }
          db.prepare("DELETE FROM volumes WHERE id = ?").run(row.id);
          events.record("volume.deleted", { userId, meta: { name: row.name } });
          return row;
        })
        .immediate(),
    attach: (userId, ref, sandboxRef, mount, readOnly) =>
      db
        .transaction(() => {
          const volume = withAttachments(find(userId, ref));
          const sandbox = sandboxes.get({ userId }, sandboxRef);
          checkMountPath(mount);
          if (volume.status !== "ready") {
            throw new ConnectError(`volume ${volume.name} is still being created`, Code.FailedPrecondition);
          }
          if (volume.attachments.some((a) => a.sandbox_id === sandbox.id)) {
            throw new ConnectError(
              `volume ${volume.name} is already attached to ${sandbox.name}`,
              Code.AlreadyExists,
            );
          }
          // Several sandboxes may attach it, read-write or read-only: unlike v1's block devices,
          // one host ext4 mount serves them all through their gofers (phase2-notes §3).
          if (mountTaken.get(sandbox.id, mount)) {
            throw new ConnectError(`${sandbox.name} already has a volume at ${mount}`, Code.AlreadyExists);
          }
          db.prepare(
            "INSERT INTO volume_attachments (volume_id, sandbox_id, mount, read_only, attached_at) VALUES (?, ?, ?, ?, ?)",
          ).run(volume.id, sandbox.id, mount, readOnly ? 1 : 0, nowIso());
          return withAttachments(volume);
        })
        .immediate(),
    detach(userId, ref, sandboxRef) {
      const volume = find(userId, ref);
      const sandbox = sandboxes.get({ userId }, sandboxRef);
      return (
        db
          .prepare("DELETE FROM volume_attachments WHERE volume_id = ? AND sandbox_id = ?")
          .run(volume.id, sandbox.id).changes > 0
      );
    },
  };
}
