import type { ServerResponse } from "node:http";
import type { AuthenticatedUser } from "./authenticated-user.js";

/** Why a live session is being ended. */
export const KEY_REVOKED = "api key revoked";

/** Something opened with an API key that outlives its request: a WebSocket, a streamed exec. */
export interface LiveSession {
  /** Ends the session now; `reason` is meant for the client. */
  end(reason: string): void;
}

/**
 * The long-lived sessions (shell/exec WebSockets, NDJSON exec streams) of each key and user,
 * so that revoking a key or deleting a user ends what was opened with it rather than letting
 * it run on with a key that no longer exists.
 */
export interface LiveSessions {
  /** Tracks a session of `user`; the returned function untracks it (call it when it ends). */
  register(user: AuthenticatedUser, session: LiveSession): () => void;
  /** Ends every session opened with this key; returns how many. */
  endKey(keySha256: string, reason?: string): number;
  /** Ends every session of this user; returns how many. */
  endUser(userId: string, reason?: string): number;
  size(): number;
}

interface Tracked {
  readonly userId: string;
  readonly keySha256: string;
  readonly session: LiveSession;
}

export function createLiveSessions(): LiveSessions {
  const live = new Set<Tracked>();

  const endWhere = (match: (t: Tracked) => boolean, reason: string) => {
    let n = 0;
    for (const t of [...live]) {
      if (!match(t)) continue;
      live.delete(t);
      n++;
      try {
        t.session.end(reason);
      } catch {
        // An already-broken socket is as ended as it gets.
      }
    }
    return n;
  };

  return {
    register(user, session) {
      const tracked: Tracked = { userId: user.id, keySha256: user.keySha256 ?? "", session };
      live.add(tracked);
      return () => void live.delete(tracked);
    },
    endKey: (keySha256, reason = KEY_REVOKED) =>
      keySha256 === "" ? 0 : endWhere((t) => t.keySha256 === keySha256, reason),
    endUser: (userId, reason = KEY_REVOKED) => endWhere((t) => t.userId === userId, reason),
    size: () => live.size,
  };
}

/**
 * Ends a streamed (NDJSON) HTTP response: a last `{"type":"error"}` line, then the connection
 * closes (once the line is flushed, or after a second for a client that stopped reading).
 */
export function endNdjsonStream(res: ServerResponse, reason: string): void {
  if (res.writableEnded || res.destroyed) return;
  const close = () => res.destroy();
  setTimeout(close, 1_000).unref();
  res.write(`${JSON.stringify({ type: "error", data: reason })}\n`, close);
}
