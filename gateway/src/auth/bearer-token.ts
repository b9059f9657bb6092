import { Code, ConnectError } from "@connectrpc/connect";

/** API keys are `bht_` followed by 64 hex chars (32 random bytes). */
const apiKeyPattern = /^bht_[0-9a-f]{64}$/;

export const AUTHORIZATION_REQUIRED = "authorization required";
export const INVALID_API_KEY = "invalid api key";

/**
 * The API key from an `Authorization: Bearer …` header. No header is "authorization
 * required"; anything that cannot be a key is "invalid api key" without asking the store.
 */
export function apiKeyFromHeader(header: string | null | undefined): string {
  if (header === null || header === undefined || header.trim() === "") {
    throw new ConnectError(AUTHORIZATION_REQUIRED, Code.Unauthenticated);
  }
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header.trim());
  const key = m?.[1];
  if (key === undefined || !apiKeyPattern.test(key)) {
    throw new ConnectError(INVALID_API_KEY, Code.Unauthenticated);
  }
  return key;
}
