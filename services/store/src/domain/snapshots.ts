import { Code, ConnectError } from "@connectrpc/connect";
import type { SqliteDatabase } from "../adapters/sqlite-database.js";
import { nowIso } from "./clock.js";
import type { EventLog } from "./events.js";
import { isId, newId } from "./ids.js";
import { checkName, isUniqueViolation } from "./names.js";
import type { UserDirectory } from "./users.js";

export interface SnapshotRow {
  id: string;
  user_id: string;
  name: string;
  source_sandbox_id: string;
  path: string;
  manifest: string;
  size_mb: number;
  created_at: string;
}

export interface SnapshotRegistry {
  create(
    userId: string,
    input: { name: string; sourceSandboxId?: string; path?: string; manifestJson?: string; sizeMb?: number },
  ): SnapshotRow;
  get(userId: string, ref: string): SnapshotRow;
  list(userId: string): SnapshotRow[];
  delete(userId: string, ref: string): SnapshotRow;
}

export function createSnapshotRegistry(
  db: SqliteDatabase,
  users: UserDirectory,
  events: EventLog,
): SnapshotRegistry {
  const byId = db.prepare<[string, string], SnapshotRow>(
    "SELECT * FROM snapshots WHERE id = ? AND user_id = ?",
  );
  const byName = db.prepare<[string, string], SnapshotRow>(
    "SELECT * FROM snapshots WHERE user_id = ? AND name = ?",
  );
  const countOwn = db.prepare<[string], { n: number }>(
    "SELECT count(*) AS n FROM snapshots WHERE user_id = ?",
  );
  const insert =
    db.prepare(`INSERT INTO snapshots (id, user_id, name, source_sandbox_id, path, manifest, size_mb, created_at)
    VALUES (@id, @user_id, @name, @source_sandbox_id, @path, @manifest, @size_mb, @created_at)`);

  const find = (userId: string, ref: string): SnapshotRow => {
    const row = (isId(ref) ? byId.get(ref, userId) : undefined) ?? byName.get(userId, ref);
    if (!row) throw new ConnectError(`snapshot ${JSON.stringify(ref.slice(0, 80))} not found`, Code.NotFound);
    return row;
  };
  const exists = (name: string) =>
    new ConnectError(`snapshot ${JSON.stringify(name)} already exists`, Code.AlreadyExists);

  return {
    create: (userId, input) =>
      db
        .transaction(() => {
          const owner = users.byId(userId);
          checkName("snapshot", input.name);
          let manifest = "{}";
          if (input.manifestJson) {
            try {
              JSON.parse(input.manifestJson);
            } catch {
              throw new ConnectError("manifest_json is not valid JSON", Code.InvalidArgument);
            }
            manifest = input.manifestJson;
          }
          if (byName.get(userId, input.name)) throw exists(input.name);
          const n = countOwn.get(userId)?.n ?? 0;
          if (n >= owner.max_snapshots) {
            throw new ConnectError(
              `snapshot limit reached (${n}/${owner.max_snapshots})`,
              Code.ResourceExhausted,
            );
          }
          const row: SnapshotRow = {
            id: newId(),
            user_id: userId,
            name: input.name,
            source_sandbox_id: input.sourceSandboxId ?? "",
            path: input.path ?? "",
            manifest,
            size_mb: input.sizeMb ?? 0,
            created_at: nowIso(),
          };
          try {
            insert.run(row);
          } catch (e) {
            if (isUniqueViolation(e)) throw exists(input.name);
            throw e;
          }
          events.record("snapshot.created", {
            userId,
            sandboxId: row.source_sandbox_id,
            meta: { name: row.name, size_mb: row.size_mb },
          });
          return row;
        })
        .immediate(),
    get: find,
    list: (userId) =>
      db
        .prepare<[string], SnapshotRow>("SELECT * FROM snapshots WHERE user_id = ? ORDER BY created_at")
        .all(userId),
    delete: (userId, ref) =>
      db
        .transaction(() => {
          const row = find(userId, ref);
          db.prepare("DELETE FROM snapshots WHERE id = ?").run(row.id);
          events.record("snapshot.deleted", { userId, meta: { name: row.name } });
          return row;
        })
        .immediate(),
  };
}
