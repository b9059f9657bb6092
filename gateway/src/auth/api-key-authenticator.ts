import { createHash } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { AuthenticatedUser } from "./authenticated-user.js";
import { INVALID_API_KEY } from "./bearer-token.js";

/** Where a request came from, for the store's auth.failed event. */
export interface RequestOrigin {
  readonly remoteAddr: string;
  readonly path: string;
}

/** Resolves an API key to its user, or undefined when no user has that key. */
export type ApiKeyLookup = (
  apiKey: string,
  origin: RequestOrigin,
) => Promise<{ user: AuthenticatedUser; keySha256: string } | undefined>;

export interface ApiKeyAuthenticator {
  /** The key's user; throws Unauthenticated "invalid api key" for an unknown key. */
  authenticate(apiKey: string, origin: RequestOrigin): Promise<AuthenticatedUser>;
  /** Drops the cached entry of one key, by its hex SHA-256 (after a rotation). */
  forgetKey(keySha256: string): void;
  /** Drops cached entries of one user (after a key rotation or deletion). */
  forgetUser(userId: string): void;
  /** Drops every cached entry. */
  clear(): void;
}

export interface ApiKeyAuthenticatorOptions {
  /** How long a valid key is trusted without asking the store again. */
  ttlMs?: number;
  /** Bound on cached keys; the oldest entry goes first. */
  maxEntries?: number;
  now?: () => number;
}

interface CacheEntry {
  readonly user: AuthenticatedUser;
  readonly expiresAt: number;
}

/**
 * Caches valid keys by their SHA-256 (raw keys are never kept) and coalesces concurrent
 * lookups of the same key into one store call. Unknown keys are not cached: each attempt
 * reaches the store, which records it as an auth.failed event.
 */
export function createApiKeyAuthenticator(
  lookup: ApiKeyLookup,
  options: ApiKeyAuthenticatorOptions = {},
): ApiKeyAuthenticator {
  const ttlMs = options.ttlMs ?? 30_000;
  const maxEntries = options.maxEntries ?? 10_000;
  const now = options.now ?? Date.now;
  const cache = new Map<string, CacheEntry>();
  const inFlight = new Map<string, Promise<AuthenticatedUser | undefined>>();

  const remember = (digest: string, user: AuthenticatedUser) => {
    cache.delete(digest);
    if (cache.size >= maxEntries) {
      const oldest = cache.keys().next().value;
      if (oldest !== undefined) cache.delete(oldest);
    }
    cache.set(digest, { user, expiresAt: now() + ttlMs });
  };

  const resolve = (apiKey: string, origin: RequestOrigin): Promise<AuthenticatedUser | undefined> => {
    const digest = createHash("sha256").update(apiKey).digest("hex");
    const hit = cache.get(digest);
    if (hit !== undefined && hit.expiresAt > now()) return Promise.resolve(hit.user);
    let pending = inFlight.get(digest);
    if (pending === undefined) {
      pending = lookup(apiKey, origin).then((found) => {
        if (found !== undefined) remember(digest, found.user);
        return found?.user;
      });
      const settled = () => inFlight.delete(digest);
      pending.then(settled, settled);
      inFlight.set(digest, pending);
    }
    return pending;
  };

  return {
    async authenticate(apiKey, origin) {
      const user = await resolve(apiKey, origin);
      if (user === undefined) throw new ConnectError(INVALID_API_KEY, Code.Unauthenticated);
      return user;
    },
    forgetKey: (keySha256) => void cache.delete(keySha256),
    forgetUser(userId) {
      for (const [digest, entry] of cache) if (entry.user.id === userId) cache.delete(digest);
    },
    clear: () => cache.clear(),
  };
}
