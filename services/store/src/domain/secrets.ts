import { Code, ConnectError } from "@connectrpc/connect";
import type { SecretCipher } from "../adapters/age-cipher.js";
import type { SqliteDatabase } from "../adapters/sqlite-database.js";
import { nowIso } from "./clock.js";
import type { EventLog } from "./events.js";
import { SECRET_NAME_RULE, checkName } from "./names.js";
import type { UserDirectory } from "./users.js";

export const MAX_SECRET_BYTES = 64 * 1024;
export const MAX_SECRETS_PER_USER = 1000;

export interface SecretInfoRow {
  name: string;
  created_at: string;
  updated_at: string;
}

/**
 * A user's secrets. Values are encrypted before they reach SQLite, so neither the database
 * file nor its WAL ever holds plaintext; only `resolve` decrypts, and nothing here logs values.
 */
export interface SecretVault {
  set(userId: string, name: string, value: string): Promise<{ secret: SecretInfoRow; created: boolean }>;
  list(userId: string): SecretInfoRow[];
  delete(userId: string, name: string): void;
  resolve(userId: string, names: readonly string[]): Promise<Record<string, string>>;
}

export function createSecretVault(
  db: SqliteDatabase,
  cipher: SecretCipher,
  users: UserDirectory,
  events: EventLog,
): SecretVault {
  const selectInfo = db.prepare<[string, string], SecretInfoRow>(
    "SELECT name, created_at, updated_at FROM secrets WHERE user_id = ? AND name = ?",
  );
  const listInfo = db.prepare<[string], SecretInfoRow>(
    "SELECT name, created_at, updated_at FROM secrets WHERE user_id = ? ORDER BY name",
  );
  const countForUser = db.prepare<[string], { n: number }>(
    "SELECT count(*) AS n FROM secrets WHERE user_id = ?",
  );
  const upsert = db.prepare(`INSERT INTO secrets (user_id, name, value_encrypted, created_at, updated_at)
    VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (user_id, name) DO UPDATE SET value_encrypted = excluded.value_encrypted, updated_at = excluded.updated_at`);
  const remove = db.prepare("DELETE FROM secrets WHERE user_id = ? AND name = ?");
  const selectValue = db.prepare<[string, string], { value_encrypted: Buffer }>(
    "SELECT value_encrypted FROM secrets WHERE user_id = ? AND name = ?",
  );

  const write = db.transaction((userId: string, name: string, ciphertext: Uint8Array) => {
    users.byId(userId);
    const existed = selectInfo.get(userId, name) !== undefined;
    if (!existed && (countForUser.get(userId)?.n ?? 0) >= MAX_SECRETS_PER_USER) {
      throw new ConnectError(`secret limit reached (${MAX_SECRETS_PER_USER})`, Code.ResourceExhausted);
    }
    const now = nowIso();
    upsert.run(userId, name, Buffer.from(ciphertext), now, now);
    events.record("secret.set", { userId, meta: { name, created: !existed } });
    return { secret: selectInfo.get(userId, name) as SecretInfoRow, created: !existed };
  });

  const notFound = (name: string) =>
    new ConnectError(`secret ${JSON.stringify(name.slice(0, 128))} not found`, Code.NotFound);

  return {
    async set(userId, name, value) {
      checkName("secret", name, SECRET_NAME_RULE);
      if (value === "") throw new ConnectError("secret value must not be empty", Code.InvalidArgument);
      const size = Buffer.byteLength(value);
      if (size > MAX_SECRET_BYTES) {
        throw new ConnectError(
          `secret value is ${size} bytes, more than the ${MAX_SECRET_BYTES} allowed`,
          Code.InvalidArgument,
        );
      }
      users.byId(userId);
      const ciphertext = await cipher.encrypt(value);
      return write.immediate(userId, name, ciphertext);
    },
    list(userId) {
      users.byId(userId);
      return listInfo.all(userId);
    },
    delete(userId, name) {
      db.transaction(() => {
        if (remove.run(userId, name).changes === 0) throw notFound(name);
        events.record("secret.deleted", { userId, meta: { name } });
      }).immediate();
    },
    async resolve(userId, names) {
      const sealed = names.map((name) => {
        const row = selectValue.get(userId, name);
        if (!row) throw notFound(name);
        return [name, row.value_encrypted] as const;
      });
      const out: Record<string, string> = {};
      for (const [name, ciphertext] of sealed) out[name] = await cipher.decrypt(ciphertext);
      return out;
    },
  };
}
