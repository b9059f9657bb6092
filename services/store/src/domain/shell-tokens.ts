import { randomBytes, timingSafeEqual } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { SqliteDatabase } from "../adapters/sqlite-database.js";
import { nowIso } from "./clock.js";
import { sha256Hex } from "./ids.js";
import type { SandboxRegistry } from "./sandboxes.js";

/** One web-shell token per sandbox: 32 random bytes as hex, stored only as its SHA-256. */
export interface ShellTokens {
  create(userId: string, sandboxRef: string): { sandboxId: string; token: string };
  /** The owner's user id if `token` is the sandbox's token, else Unauthenticated. */
  verify(sandboxId: string, token: string): string;
  revoke(userId: string, sandboxRef: string): boolean;
}

export function createShellTokens(db: SqliteDatabase, sandboxes: SandboxRegistry): ShellTokens {
  const upsert =
    db.prepare(`INSERT INTO shell_tokens (sandbox_id, user_id, token_hash, created_at) VALUES (?, ?, ?, ?)
    ON CONFLICT (sandbox_id) DO UPDATE SET token_hash = excluded.token_hash, created_at = excluded.created_at`);
  const select = db.prepare<[string], { user_id: string; token_hash: string }>(
    "SELECT user_id, token_hash FROM shell_tokens WHERE sandbox_id = ?",
  );
  return {
    create(userId, sandboxRef) {
      const sandbox = sandboxes.get({ userId }, sandboxRef);
      const token = randomBytes(32).toString("hex");
      upsert.run(sandbox.id, sandbox.user_id, sha256Hex(token), nowIso());
      return { sandboxId: sandbox.id, token };
    },
    verify(sandboxId, token) {
      const row = select.get(sandboxId);
      const given = Buffer.from(sha256Hex(token), "hex");
      if (!row || !timingSafeEqual(Buffer.from(row.token_hash, "hex"), given)) {
        throw new ConnectError("invalid shell token", Code.Unauthenticated);
      }
      return row.user_id;
    },
    revoke(userId, sandboxRef) {
      const sandbox = sandboxes.get({ userId }, sandboxRef);
      return db.prepare("DELETE FROM shell_tokens WHERE sandbox_id = ?").run(sandbox.id).changes > 0;
    },
  };
}
