import { Code, ConnectError } from "@connectrpc/connect";
import type { ApiKeyAuthenticator, RequestOrigin } from "./api-key-authenticator.js";
import type { AuthenticatedUser } from "./authenticated-user.js";
import { apiKeyFromHeader } from "./bearer-token.js";

/** Authenticates one request from its Authorization header, for Connect and REST alike. */
export interface RequestAuth {
  authenticate(
    authorizationHeader: string | null | undefined,
    origin: RequestOrigin,
  ): Promise<AuthenticatedUser>;
  /** The cache, for handlers that rotate or delete keys. */
  readonly authenticator: ApiKeyAuthenticator;
}

export function createRequestAuth(authenticator: ApiKeyAuthenticator): RequestAuth {
  return {
    authenticator,
    authenticate: (header, origin) => authenticator.authenticate(apiKeyFromHeader(header), origin),
  };
}

/** Admin-only operations refuse other users with PermissionDenied. */
export function requireAdmin(user: AuthenticatedUser): void {
  if (!user.isAdmin) throw new ConnectError("admin privileges required", Code.PermissionDenied);
}
