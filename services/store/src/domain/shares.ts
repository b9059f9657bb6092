import { Code, ConnectError } from "@connectrpc/connect";
import type { SqliteDatabase } from "../adapters/sqlite-database.js";
import { nowIso } from "./clock.js";
import type { SandboxRegistry } from "./sandboxes.js";

export interface ShareRow {
  id: string;
  sandbox_id: string;
  user_id: string;
  session_id: string;
  read_only: number;
  expires_at: string;
  created_at: string;
  revoked_at: string | null;
}

export interface NewShare {
  id: string;
  userId: string;
  sandboxRef: string;
  sessionId: string;
  readOnly: boolean;
  expiresAt: string;
}

/**
 * Share links of sandboxes. The gateway signs the links and checks the signature and expiry
 * itself; this registry is what outlives a gateway: a share exists, or was revoked.
 */
export interface ShareRegistry {
  record(share: NewShare): ShareRow;
  get(id: string): ShareRow;
  /** The user's live (neither revoked nor expired) shares of the sandbox, newest first. */
  list(userId: string, sandboxRef: string): ShareRow[];
  /** Revokes one live share, or every live share of the sandbox; returns the ids revoked. */
  revoke(userId: string, sandboxRef: string, shareId: string | undefined): string[];
}

const SHARE_ID = /^shr_[0-9a-f]{16,64}$/;

export function createShareRegistry(db: SqliteDatabase, sandboxes: SandboxRegistry): ShareRegistry {
  const insert = db.prepare(
    `INSERT INTO shares (id, sandbox_id, user_id, session_id, read_only, expires_at, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  const byId = db.prepare<[string], ShareRow>("SELECT * FROM shares WHERE id = ?");
  const live = db.prepare<[string, string, string], ShareRow>(
    `SELECT * FROM shares WHERE sandbox_id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ?
     ORDER BY created_at DESC, id`,
  );
  const revokeOne = db.prepare(
    "UPDATE shares SET revoked_at = ? WHERE id = ? AND sandbox_id = ? AND user_id = ? AND revoked_at IS NULL",
  );
  const revokeAll = db.prepare<[string, string, string], { id: string }>(
    "UPDATE shares SET revoked_at = ? WHERE sandbox_id = ? AND user_id = ? AND revoked_at IS NULL RETURNING id",
  );
  const get = (id: string): ShareRow => {
    const row = byId.get(id);
    if (row === undefined) throw new ConnectError(`share ${id} not found`, Code.NotFound);
    return row;
  };
  return {
    record(share) {
      if (!SHARE_ID.test(share.id)) throw new ConnectError("malformed share id", Code.InvalidArgument);
      if (Number.isNaN(Date.parse(share.expiresAt))) {
        throw new ConnectError("expires_at required", Code.InvalidArgument);
      }
      if (share.sessionId === "") throw new ConnectError("session_id required", Code.InvalidArgument);
      const sandbox = sandboxes.get({ userId: share.userId }, share.sandboxRef);
      insert.run(
        share.id,
        sandbox.id,
        sandbox.user_id,
        share.sessionId,
        share.readOnly ? 1 : 0,
        share.expiresAt,
        nowIso(),
      );
      return get(share.id);
    },
    get,
    list(userId, sandboxRef) {
      const sandbox = sandboxes.get({ userId }, sandboxRef);
      return live.all(sandbox.id, sandbox.user_id, nowIso());
    },
    revoke(userId, sandboxRef, shareId) {
      const sandbox = sandboxes.get({ userId }, sandboxRef);
      const at = nowIso();
      if (shareId === undefined) return revokeAll.all(at, sandbox.id, sandbox.user_id).map((r) => r.id);
      if (revokeOne.run(at, shareId, sandbox.id, sandbox.user_id).changes > 0) return [shareId];
      const row = byId.get(shareId);
      if (row === undefined || row.sandbox_id !== sandbox.id) {
        throw new ConnectError(`share ${shareId} not found`, Code.NotFound);
      }
      return [];
    },
  };
}
