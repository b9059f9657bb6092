import type { ServiceClients } from "../service-clients.js";
import { Code, ConnectError } from "@connectrpc/connect";

export interface PublishedRoute {
  readonly sandboxId: string;
  readonly userId: string;
  readonly port: number;
  readonly private: boolean;
}

/**
 * Alias → route lookups for the proxy: the store, fronted by a small LRU (10k entries, v1's
 * size) whose entries live a few seconds. Unpublish through this gateway evicts at once; a
 * destroyed sandbox is a 404 at once anyway, because the wake controller forgets it and the
 * vmm no longer knows it.
 */
export interface AliasCache {
  resolve(alias: string): Promise<PublishedRoute | undefined>;
  evict(alias: string): void;
}

export function createAliasCache(
  clients: ServiceClients,
  options: { ttlMs?: number; maxEntries?: number; now?: () => number } = {},
): AliasCache {
  const ttlMs = options.ttlMs ?? 5_000;
  const maxEntries = options.maxEntries ?? 10_000;
  const now = options.now ?? Date.now;
  const entries = new Map<string, { route: PublishedRoute; until: number }>();
  return {
    async resolve(alias) {
      const hit = entries.get(alias);
      if (hit !== undefined && hit.until > now()) {
        entries.delete(alias);
        entries.set(alias, hit);
        return hit.route;
      }
      entries.delete(alias);
      try {
        const { rule } = await clients.store.resolvePublishAlias({ alias });
        if (rule === undefined) return undefined;
        const route = {
          sandboxId: rule.sandboxId,
          userId: rule.userId,
          port: rule.port,
          private: rule.private,
        };
        if (entries.size >= maxEntries) {
          const oldest = entries.keys().next().value;
          if (oldest !== undefined) entries.delete(oldest);
        }
        entries.set(alias, { route, until: now() + ttlMs });
        return route;
      } catch (e) {
        if (e instanceof ConnectError && e.code === Code.NotFound) return undefined;
        throw e;
      }
    },
    evict: (alias) => void entries.delete(alias),
  };
}
