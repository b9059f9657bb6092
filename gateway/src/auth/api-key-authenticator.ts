import { createHash } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { AuthenticatedUser } from "./authenticated-user.js";
import { INVALID_API_KEY } from "./bearer-token.js";

/** Resolves an API key to its user, or undefined when no user has that key. */
export type ApiKeyLookup = (apiKey: string) => Promise<AuthenticatedUser | undefined>;

export interface ApiKeyAuthenticator {
  /** The key's user; throws Unauthenticated "invalid api key" for an unknown key. */
  authenticate(apiKey: string): Promise<AuthenticatedUser>;
  /** Drops cached entries of one user (after a key rotation or deletion). */
  forgetUser(userId: string): void;
  /** Drops every cached entry. */
  clear(): void;
}

export interface ApiKeyAuthenticatorOptions {
  /** How long a valid key is trusted without asking the store again. */
  ttlMs?: number;
  /** How long an unknown key is remembered as unknown, so guessing costs the store nothing. */
  negativeTtlMs?: number;
  /** Bound on cached keys; the oldest entry goes first. */
  maxEntries?: number;
  now?: () => number;
}

interface CacheEntry {
  readonly user: AuthenticatedUser | undefined;
  readonly expiresAt: number;
}

/**
 * Caches lookups by the key's SHA-256 (raw keys are never kept) and coalesces concurrent
 * lookups of the same key into one store call.
 */
export function createApiKeyAuthenticator(
  lookup: ApiKeyLookup,
  options: ApiKeyAuthenticatorOptions = {},
): ApiKeyAuthenticator {
  const ttlMs = options.ttlMs ?? 30_000;
  const negativeTtlMs = options.negativeTtlMs ?? 2_000;
  const maxEntries = options.maxEntries ?? 10_000;
  const now = options.now ?? Date.now;
  const cache = new Map<string, CacheEntry>();
  const inFlight = new Map<string, Promise<AuthenticatedUser | undefined>>();

  const remember = (digest: string, user: AuthenticatedUser | undefined) => {
    cache.delete(digest);
    if (cache.size >= maxEntries) {
      const oldest = cache.keys().next().value;
      if (oldest !== undefined) cache.delete(oldest);
    }
    cache.set(digest, { user, expiresAt: now() + (user === undefined ? negativeTtlMs : ttlMs) });
  };

  const resolve = async (apiKey: string): Promise<AuthenticatedUser | undefined> => {
    const digest = createHash("sha256").update(apiKey).digest("hex");
    const hit = cache.get(digest);
    if (hit !== undefined && hit.expiresAt > now()) return hit.user;
    let pending = inFlight.get(digest);
    if (pending === undefined) {
      pending = lookup(apiKey).then((user) => {
        remember(digest, user);
        return user;
      });
      const settled = () => inFlight.delete(digest);
      pending.then(settled, settled);
      inFlight.set(digest, pending);
    }
    return pending;
  };

  return {
    async authenticate(apiKey) {
      const user = await resolve(apiKey);
      if (user === undefined) throw new ConnectError(INVALID_API_KEY, Code.Unauthenticated);
      return user;
    },
    forgetUser(userId) {
      for (const [digest, entry] of cache) if (entry.user?.id === userId) cache.delete(digest);
    },
    clear: () => cache.clear(),
  };
}
