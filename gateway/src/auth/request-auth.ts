import { Code, ConnectError } from "@connectrpc/connect";
import type { IpRateLimiter } from "../limits/ip-rate-limiter.js";
import { type ApiKeyAuthenticator, type RequestOrigin, keyDigest } from "./api-key-authenticator.js";
import type { AuthenticatedUser } from "./authenticated-user.js";
import { apiKeyFromHeader } from "./bearer-token.js";
import { type LiveSessions, createLiveSessions } from "./live-sessions.js";

/** Authenticates one request from its Authorization header, for Connect and REST alike. */
export interface RequestAuth {
  authenticate(
    authorizationHeader: string | null | undefined,
    origin: RequestOrigin,
  ): Promise<AuthenticatedUser>;
  /** The cache, for handlers that change a user's limits. */
  readonly authenticator: ApiKeyAuthenticator;
  /** Long-lived sessions (WebSockets, streamed execs) per key and user. */
  readonly sessions: LiveSessions;
  /** A key was rotated away or deleted: forget it and end what was opened with it. */
  revokeKey(keySha256: string): void;
  /** A user was deleted: forget its keys and end its sessions. */
  revokeUser(userId: string): void;
}

export interface RequestAuthOptions {
  /** Charged for every request that does not carry a key known to be valid. */
  unauthenticatedLimiter?: IpRateLimiter;
  sessions?: LiveSessions;
}

/**
 * Requests with a key already known to be valid go straight through (even when the cache entry
 * needs a fresh store check). Every other request (no header, a malformed key, a key never
 * seen valid) first takes a token of its client address's bucket, so unauthenticated floods
 * get 429 before reaching the store, while a tenant behind the same address is still served.
 */
export function createRequestAuth(
  authenticator: ApiKeyAuthenticator,
  options: RequestAuthOptions = {},
): RequestAuth {
  const limiter = options.unauthenticatedLimiter;
  const sessions = options.sessions ?? createLiveSessions();
  return {
    authenticator,
    sessions,
    async authenticate(header, origin) {
      let apiKey: string;
      try {
        apiKey = apiKeyFromHeader(header);
      } catch (e) {
        limiter?.take(origin.remoteAddr);
        throw e;
      }
      const digest = keyDigest(apiKey);
      if (!authenticator.isKnownValid(apiKey, digest)) limiter?.take(origin.remoteAddr);
      return authenticator.authenticate(apiKey, origin, digest);
    },
    revokeKey(keySha256) {
      authenticator.forgetKey(keySha256);
      sessions.endKey(keySha256);
    },
    revokeUser(userId) {
      authenticator.forgetUser(userId);
      sessions.endUser(userId);
    },
  };
}

/** Admin-only operations refuse other users with PermissionDenied. */
export function requireAdmin(user: AuthenticatedUser): void {
  if (!user.isAdmin) throw new ConnectError("admin privileges required", Code.PermissionDenied);
}
