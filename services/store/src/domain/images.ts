import { Code, ConnectError } from "@connectrpc/connect";
import type { SqliteDatabase } from "../adapters/sqlite-database.js";
import { nowIso } from "./clock.js";
import { newId } from "./ids.js";
import { checkName, isUniqueViolation } from "./names.js";
import type { UserDirectory } from "./users.js";

export interface ImageRow {
  id: string;
  user_id: string | null;
  name: string;
  source: string;
  file_path: string;
  size_mb: number;
  oci_digest: string;
  oci_config: string;
  created_at: string;
}

export interface NewImage {
  name: string;
  source: string;
  filePath?: string;
  sizeMb?: number;
  ociDigest?: string;
  ociConfigJson?: string;
}

/** A user's images, images shared with it, and system images (user_id NULL) visible to all. */
export interface ImageCatalog {
  /** `userId` undefined: a system image. */
  create(userId: string | undefined, input: NewImage): ImageRow;
  get(userId: string, ref: string): ImageRow;
  list(userId: string): ImageRow[];
  delete(userId: string | undefined, ref: string): ImageRow;
}

export function createImageCatalog(db: SqliteDatabase, users: UserDirectory): ImageCatalog {
  // Visible to a user: its own, shared with it, or system. Own first, then shared, then system.
  const visible = `SELECT i.*, CASE WHEN i.user_id = @user THEN 0 WHEN i.user_id IS NULL THEN 2 ELSE 1 END AS rank
    FROM images i WHERE i.user_id = @user OR i.user_id IS NULL
      OR i.id IN (SELECT image_id FROM image_shares WHERE user_id = @user)`;
  const findVisible = db.prepare<{ user: string; ref: string }, ImageRow>(
    `SELECT * FROM (${visible}) WHERE id = @ref OR name = @ref ORDER BY (id = @ref) DESC, rank LIMIT 1`,
  );
  const listVisible = db.prepare<{ user: string }, ImageRow>(
    `SELECT * FROM (${visible}) ORDER BY rank, name`,
  );
  const countOwn = db.prepare<[string], { n: number }>("SELECT count(*) AS n FROM images WHERE user_id = ?");
  const ownByRef = db.prepare<[string, string, string], ImageRow>(
    "SELECT * FROM images WHERE user_id = ? AND (id = ? OR name = ?)",
  );
  const systemByRef = db.prepare<[string, string], ImageRow>(
    "SELECT * FROM images WHERE user_id IS NULL AND (id = ? OR name = ?)",
  );
  const insert =
    db.prepare(`INSERT INTO images (id, user_id, name, source, file_path, size_mb, oci_digest, oci_config, created_at)
    VALUES (@id, @user_id, @name, @source, @file_path, @size_mb, @oci_digest, @oci_config, @created_at)`);

  const strip = (row: ImageRow & { rank?: number }): ImageRow => {
    const { rank: _rank, ...image } = row;
    return image;
  };

  return {
    create: (userId, input) =>
      db
        .transaction(() => {
          checkName("image", input.name);
          if (input.source === "") throw new ConnectError("image source is required", Code.InvalidArgument);
          let config = "{}";
          if (input.ociConfigJson) {
            try {
              JSON.parse(input.ociConfigJson);
            } catch {
              throw new ConnectError("oci_config_json is not valid JSON", Code.InvalidArgument);
            }
            config = input.ociConfigJson;
          }
          if (userId !== undefined) {
            const owner = users.byId(userId);
            const n = countOwn.get(userId)?.n ?? 0;
            if (n >= owner.max_images) {
              throw new ConnectError(
                `image limit reached (${n}/${owner.max_images})`,
                Code.ResourceExhausted,
              );
            }
          }
          const row: ImageRow = {
            id: newId(),
            user_id: userId ?? null,
            name: input.name,
            source: input.source,
            file_path: input.filePath ?? "",
            size_mb: input.sizeMb ?? 0,
            oci_digest: input.ociDigest ?? "",
            oci_config: config,
            created_at: nowIso(),
          };
          try {
            insert.run(row);
          } catch (e) {
            if (isUniqueViolation(e)) {
              throw new ConnectError(
                `image ${JSON.stringify(input.name)} already exists`,
                Code.AlreadyExists,
              );
            }
            throw e;
          }
          return row;
        })
        .immediate(),
    get(userId, ref) {
      const row = findVisible.get({ user: userId, ref });
      if (!row) throw new ConnectError(`image ${JSON.stringify(ref.slice(0, 80))} not found`, Code.NotFound);
      return strip(row);
    },
    list: (userId) => listVisible.all({ user: userId }).map(strip),
    delete: (userId, ref) =>
      db
        .transaction(() => {
          const row = userId === undefined ? systemByRef.get(ref, ref) : ownByRef.get(userId, ref, ref);
          if (!row) {
            throw new ConnectError(`image ${JSON.stringify(ref.slice(0, 80))} not found`, Code.NotFound);
          }
          db.prepare("DELETE FROM images WHERE id = ?").run(row.id);
          return row;
        })
        .immediate(),
  };
}
