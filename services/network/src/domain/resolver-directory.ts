import type { KeyedLock } from "@bhatti/runtime";
import { type Nftables, nftScripts } from "../adapters/nftables.js";
import type { ResolverDirectory } from "../dns/user-resolver.js";
import type { SandboxState } from "./network-state.js";

/** Resolved allow-list addresses stay open at least this long (clients cache beyond TTLs). */
const MIN_RESOLVED_SECONDS = 300;
const MAX_RESOLVED_SECONDS = 86_400;

export interface ResolverDirectoryDeps {
  /** Ids of the user's sandboxes with devices on its bridge. */
  members(): Iterable<string>;
  sandboxes: ReadonlyMap<string, SandboxState>;
  /** The per-sandbox lock that attach, detach and policy changes hold. */
  sandboxLock: KeyedLock;
  nft: Nftables;
}

/** What one user's resolver sees: names, addresses and policies of that user's sandboxes only. */
export function createResolverDirectory(deps: ResolverDirectoryDeps): ResolverDirectory {
  const { sandboxes, sandboxLock, nft } = deps;
  const mine = () => [...deps.members()].map((id) => sandboxes.get(id)).filter((s) => s !== undefined);
  return {
    addressesOf: (name) =>
      mine()
        .filter((s) => s.name !== "" && s.name.toLowerCase() === name)
        .map((s) => s.address),
    nameOf: (address) => {
      const name = mine().find((s) => s.address === address)?.name;
      return name === undefined || name === "" ? undefined : name.toLowerCase();
    },
    policyOf: (address) => mine().find((s) => s.address === address)?.policy,
    allowResolved: (address, ips, ttl) => {
      const s = mine().find((m) => m.address === address);
      if (s === undefined) return Promise.resolve();
      return sandboxLock.run(s.sandboxId, async () => {
        if (s.policy.mode !== "allow-list" || sandboxes.get(s.sandboxId) !== s) return;
        const seconds = Math.min(Math.max(ttl, MIN_RESOLVED_SECONDS), MAX_RESOLVED_SECONDS);
        const now = Date.now();
        // Skip the nft call when every address is already open for at least half the time.
        const stale = ips.filter((i) => (s.resolved.get(i) ?? 0) < now + (seconds * 1000) / 2);
        if (stale.length === 0) return;
        await nft.apply(nftScripts.allowResolved(s.address, stale, seconds));
        for (const i of stale) s.resolved.set(i, now + seconds * 1000);
      });
    },
  };
}
