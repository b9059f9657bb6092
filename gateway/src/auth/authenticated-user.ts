/** The caller behind a valid API key, as the store describes it. */
export interface AuthenticatedUser {
  readonly id: string;
  readonly name: string;
  readonly isAdmin: boolean;
}
