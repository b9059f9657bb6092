import { closeSync, constants, lstatSync, mkdirSync, openSync, statSync, unlinkSync } from "node:fs";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { type SqliteDatabase, schemaVersion } from "../adapters/sqlite-database.js";
import type { EventLog } from "./events.js";

export interface BackupResult {
  path: string;
  sizeBytes: number;
  schemaVersion: number;
}

/** A backup file name: no directory part, no leading dot. */
const backupNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Where a requested backup goes: a bare file name lands in `backupDir`; an absolute path is
 * accepted only if it names a file directly in `backupDir`. A backup holds key hashes and agent
 * tokens, so it is never written anywhere else on the host (security review #22).
 */
export function backupTarget(backupDir: string, requested: string): string {
  const dir = resolve(backupDir);
  const name = isAbsolute(requested) && resolve(dirname(requested)) === dir ? basename(requested) : requested;
  if (!backupNamePattern.test(name)) {
    throw new ConnectError(
      `backups are written to ${dir} only: give a file name (letters, digits, . _ -) or a path in that directory`,
      Code.InvalidArgument,
    );
  }
  return join(dir, name);
}

/** Creates the backup directory 0700 if needed; refuses a symlink or a directory others can write. */
function ensureBackupDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory()) {
    throw new ConnectError(`backup directory ${dir} is not a directory`, Code.FailedPrecondition);
  }
  if ((st.mode & 0o022) !== 0 || (process.getuid !== undefined && st.uid !== process.getuid())) {
    throw new ConnectError(
      `backup directory ${dir} is writable by others or not owned by the store; fix its owner and mode (0700)`,
      Code.FailedPrecondition,
    );
  }
}

/**
 * An online, consistent copy through SQLite's backup API (writers keep going meanwhile), as a
 * new 0600 file in the backup directory. The file is created with O_EXCL|O_NOFOLLOW before
 * SQLite writes into it, so an existing file or a planted symlink is refused, never followed.
 */
export async function backupDatabase(
  db: SqliteDatabase,
  events: EventLog,
  backupDir: string,
  requested: string,
): Promise<BackupResult> {
  const path = backupTarget(backupDir, requested);
  ensureBackupDir(dirname(path));
  let fd: number;
  try {
    fd = openSync(
      path,
      constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW,
      0o600,
    );
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") {
      throw new ConnectError(`backup target ${path} already exists`, Code.AlreadyExists);
    }
    throw new ConnectError(`cannot create ${path}: ${(e as Error).message}`, Code.FailedPrecondition);
  }
  closeSync(fd);
  try {
    await db.backup(path);
  } catch (e) {
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
    throw new ConnectError(`backup to ${path} failed: ${(e as Error).message}`, Code.Internal);
  }
  const result = { path, sizeBytes: statSync(path).size, schemaVersion: schemaVersion(db) };
  events.record("backup.created", { meta: { path, size_bytes: result.sizeBytes } });
  return result;
}
