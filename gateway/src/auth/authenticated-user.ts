import type { User } from "@bhatti/proto";

/** The caller behind a valid API key. */
export interface AuthenticatedUser {
  readonly id: string;
  readonly name: string;
  readonly isAdmin: boolean;
  /** The store's record (limits, subnet index...). */
  readonly record: User;
  /** Hex SHA-256 of the key the caller authenticated with (to end its sessions on revocation). */
  readonly keySha256?: string;
}
