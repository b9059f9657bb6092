import { classifyInterface, sandboxIdOfNetns } from "./device-names.js";

export interface OrphanInput {
  /** Interface names in the service's netns. */
  links: Iterable<string>;
  /** Names under /run/netns. */
  namespaces: Iterable<string>;
  /** Bridges and ports that existing users and sandboxes own. */
  wantedLinks: ReadonlySet<string>;
  /** Sandboxes that still exist (kept) and sandboxes this service has a record of. */
  keptSandboxIds: ReadonlySet<string>;
  recordedSandboxIds: ReadonlySet<string>;
}

/**
 * What reconciliation deletes: product devices (by name prefix) in the service's netns that
 * nobody owns, and the namespaces of sandboxes that are gone. A namespace is only ours to
 * delete if this service recorded it or its host-side veth (an orphan) was in our netns:
 * other network services (tests, other hosts' stand-ins) share /run/netns.
 */
export function findOrphans(input: OrphanInput): { links: string[]; namespaces: string[] } {
  const links = [...input.links].filter(
    (l) => classifyInterface(l) !== undefined && !input.wantedLinks.has(l),
  );
  const orphanPrefixes = new Set(
    links.map(classifyInterface).flatMap((c) => (c !== undefined && "idPrefix" in c ? [c.idPrefix] : [])),
  );
  const namespaces = [...input.namespaces].filter((n) => {
    const id = sandboxIdOfNetns(n);
    if (id === undefined || input.keptSandboxIds.has(id)) return false;
    return input.recordedSandboxIds.has(id) || orphanPrefixes.has(id.slice(0, 10));
  });
  return { links, namespaces };
}
