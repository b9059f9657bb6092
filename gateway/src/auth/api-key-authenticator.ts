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
  /**
   * The key's user; throws Unauthenticated "invalid api key" for an unknown key. `digest` is
   * keyDigest(apiKey) when the caller already computed it (one hash per request).
   */
  authenticate(apiKey: string, origin: RequestOrigin, digest?: string): Promise<AuthenticatedUser>;
  /**
   * True when the key was found valid and not forgotten since (its cache entry may have expired
   * and need a store check): such requests are not unauthenticated traffic.
   */
  isKnownValid(apiKey: string, digest?: string): boolean;
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
  /** How long an unknown key is refused without asking the store again. */
  negativeTtlMs?: number;
  /** Bound on cached keys (valid and unknown each); the oldest entry goes first. */
  maxEntries?: number;
  now?: () => number;
}

interface CacheEntry {
  readonly user: AuthenticatedUser;
  readonly expiresAt: number;
}

/** The hex SHA-256 of a key, the form the store and the cache know keys by. */
export function keyDigest(apiKey: string): string {
  return createHash("sha256").update(apiKey).digest("hex");
}

/** Inserts into a bounded insertion-ordered map, evicting the oldest entry when full. */
function setBounded<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  if (map.size >= max) {
    const oldest = map.keys().next().value;
    if (oldest !== undefined) map.delete(oldest);
  }
  map.set(key, value);
}

/**
 * Caches valid keys by their SHA-256 (raw keys are never kept) and coalesces concurrent
 * lookups of the same key into one store call. Unknown keys are cached briefly too, so a
 * client repeating a wrong key does not reach the store on every attempt.
 *
 * A lookup that was in flight while a key or user was forgotten (a rotation, a deletion) must
 * not put the old key back: every forget takes a new generation number, each lookup notes the
 * generation it started at, and its result is cached only if neither its key nor its user was
 * forgotten since.
 */
export function createApiKeyAuthenticator(
  lookup: ApiKeyLookup,
  options: ApiKeyAuthenticatorOptions = {},
): ApiKeyAuthenticator {
  const ttlMs = options.ttlMs ?? 30_000;
  const negativeTtlMs = options.negativeTtlMs ?? 5_000;
  const maxEntries = options.maxEntries ?? 10_000;
  const now = options.now ?? Date.now;
  const cache = new Map<string, CacheEntry>();
  /** Unknown digests and when they may be asked again. */
  const unknown = new Map<string, number>();
  const inFlight = new Map<string, Promise<AuthenticatedUser | undefined>>();
  let generation = 0;
  /** Lookups running, including ones a forget detached from `inFlight`. */
  let running = 0;
  /** Generation at which each user / key digest was last forgotten (kept while lookups run). */
  const forgottenUsers = new Map<string, number>();
  const forgottenKeys = new Map<string, number>();
  let clearedAt = 0;

  const forgottenSince = (started: number, digest: string, userId: string) =>
    clearedAt > started ||
    (forgottenKeys.get(digest) ?? 0) > started ||
    (forgottenUsers.get(userId) ?? 0) > started;

  const cachedUser = (digest: string): AuthenticatedUser | undefined => {
    const hit = cache.get(digest);
    return hit !== undefined && hit.expiresAt > now() ? hit.user : undefined;
  };

  const resolve = (
    apiKey: string,
    origin: RequestOrigin,
    digest: string,
  ): Promise<AuthenticatedUser | undefined> => {
    const hit = cachedUser(digest);
    if (hit !== undefined) return Promise.resolve(hit);
    const refusedUntil = unknown.get(digest);
    if (refusedUntil !== undefined) {
      if (refusedUntil > now()) return Promise.resolve(undefined);
      unknown.delete(digest);
    }
    let pending = inFlight.get(digest);
    if (pending === undefined) {
      const started = generation;
      running++;
      pending = lookup(apiKey, origin).then((found) => {
        if (found === undefined) {
          if (!forgottenSince(started, digest, "")) {
            setBounded(unknown, digest, now() + negativeTtlMs, maxEntries);
          }
          return undefined;
        }
        const user: AuthenticatedUser = { ...found.user, keySha256: digest };
        if (!forgottenSince(started, digest, user.id)) {
          setBounded(cache, digest, { user, expiresAt: now() + ttlMs }, maxEntries);
        }
        return user;
      });
      const current = pending;
      const settled = () => {
        running--;
        if (inFlight.get(digest) === current) inFlight.delete(digest);
        // With no lookup running, no one can compare against old generations.
        if (running === 0) {
          forgottenUsers.clear();
          forgottenKeys.clear();
        }
      };
      current.then(settled, settled);
      inFlight.set(digest, current);
    }
    return pending;
  };

  const forgetUser = (userId: string) => {
    generation++;
    if (running > 0) forgottenUsers.set(userId, generation);
    for (const [digest, entry] of cache) if (entry.user.id === userId) cache.delete(digest);
    // Requests arriving from now on start their own lookup instead of joining an older one.
    inFlight.clear();
  };

  return {
    async authenticate(apiKey, origin, digest = keyDigest(apiKey)) {
      const user = await resolve(apiKey, origin, digest);
      if (user === undefined) throw new ConnectError(INVALID_API_KEY, Code.Unauthenticated);
      return user;
    },
    // Expired entries stay until evicted or forgotten, so they still vouch for the key here.
    isKnownValid: (apiKey, digest = keyDigest(apiKey)) => cache.has(digest),
    forgetKey(keySha256) {
      generation++;
      if (running > 0) forgottenKeys.set(keySha256, generation);
      cache.delete(keySha256);
      unknown.delete(keySha256);
      inFlight.delete(keySha256);
    },
    forgetUser,
    clear() {
      generation++;
      clearedAt = generation;
      cache.clear();
      unknown.clear();
      inFlight.clear();
    },
  };
}
