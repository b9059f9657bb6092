import { existsSync, statSync } from "node:fs";
import { dirname, isAbsolute } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { type SqliteDatabase, schemaVersion } from "../adapters/sqlite-database.js";
import type { EventLog } from "./events.js";

export interface BackupResult {
  path: string;
  sizeBytes: number;
  schemaVersion: number;
}

/**
 * An online, consistent copy through SQLite's backup API (writers keep going meanwhile).
 * Refuses to overwrite anything: the target must be new, in an existing directory.
 */
export async function backupDatabase(
  db: SqliteDatabase,
  events: EventLog,
  path: string,
): Promise<BackupResult> {
  if (!isAbsolute(path)) throw new ConnectError("backup path must be absolute", Code.InvalidArgument);
  if (existsSync(path)) throw new ConnectError(`backup target ${path} already exists`, Code.AlreadyExists);
  const dir = dirname(path);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new ConnectError(`backup directory ${dir} does not exist`, Code.FailedPrecondition);
  }
  try {
    await db.backup(path);
  } catch (e) {
    throw new ConnectError(`backup to ${path} failed: ${(e as Error).message}`, Code.Internal);
  }
  const result = { path, sizeBytes: statSync(path).size, schemaVersion: schemaVersion(db) };
  events.record("backup.created", { meta: { path, size_bytes: result.sizeBytes } });
  return result;
}
