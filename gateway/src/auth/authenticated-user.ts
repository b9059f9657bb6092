import type { User } from "@bhatti/proto";

/** The caller behind a valid API key. */
export interface AuthenticatedUser {
  readonly id: string;
  readonly name: string;
  readonly isAdmin: boolean;
  /** The store's record (limits, subnet index...). */
  readonly record: User;
}
