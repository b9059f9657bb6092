import { Code, ConnectError } from "@connectrpc/connect";
import type { ApiKeyAuthenticator } from "./api-key-authenticator.js";
import type { AuthenticatedUser } from "./authenticated-user.js";
import { apiKeyFromHeader } from "./bearer-token.js";

/**
 * Authenticates one request from its Authorization header, for Connect and REST alike.
 * `authenticator` is undefined only while the store offers no AuthenticateApiKey RPC; every
 * caller is then the local operator.
 */
export interface RequestAuth {
  authenticate(authorizationHeader: string | null | undefined): Promise<AuthenticatedUser>;
  /** False while the store cannot check keys. */
  readonly enforced: boolean;
  readonly authenticator: ApiKeyAuthenticator | undefined;
}

/** The caller when authentication is not enforced. */
export const LOCAL_OPERATOR: AuthenticatedUser = { id: "", name: "local-operator", isAdmin: true };

export function createRequestAuth(authenticator: ApiKeyAuthenticator | undefined): RequestAuth {
  return {
    enforced: authenticator !== undefined,
    authenticator,
    async authenticate(header) {
      if (authenticator === undefined) return LOCAL_OPERATOR;
      return authenticator.authenticate(apiKeyFromHeader(header));
    },
  };
}

/** Admin-only operations refuse other users with PermissionDenied. */
export function requireAdmin(user: AuthenticatedUser): void {
  if (!user.isAdmin) throw new ConnectError("admin privileges required", Code.PermissionDenied);
}
