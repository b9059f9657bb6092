import type { AttachmentRecord } from "../adapters/attachment-file.js";
import type { KernelInventory } from "../adapters/ip-link.js";
import { nftScripts } from "../adapters/nftables.js";
import { netnsName, tapName, vethName } from "./device-names.js";
import type { EgressPolicyInput } from "./egress-policy.js";
import type { NetworkContext } from "./network-context.js";
import {
  type AttachmentKind,
  type UserState,
  portOf,
  sandboxElements,
  stateFromAddress,
  userElements,
} from "./network-state.js";
import { findOrphans } from "./orphans.js";
import { newUserState } from "./user-networks.js";

const denyAllInput: EgressPolicyInput = { mode: "deny-all", allowCidrs: [], allowHosts: [] };

/** The kind of the devices a sandbox has in the inventory, if it has any. */
function adoptableKind(
  sandboxId: string,
  inventory: Pick<KernelInventory, "links" | "netns">,
): AttachmentKind | undefined {
  if (inventory.links.has(tapName(sandboxId))) return "tap";
  if (inventory.links.has(vethName(sandboxId)) || inventory.netns.has(netnsName(sandboxId))) return "netns";
  return undefined;
}

/**
 * Rebuilds the model from the store's addresses and the attachments file, then makes the
 * kernel match it: the whole rule set in one transaction, orphaned devices removed, missing
 * bridges and sandbox devices re-created (a live netns is never touched), resolvers started.
 */
export async function reconcile(ctx: NetworkContext): Promise<void> {
  const { plan, addressing, ip, nft, file, logger, sandboxes, users, devices } = ctx;
  const addresses = await ctx.noteStore(addressing.list());
  const loaded = file.load();
  const records = new Map(loaded.records.map((r) => [r.sandboxId, r]));
  const inventory = await ip.inventory();
  // Without the file, a sandbox whose address the store holds and whose devices exist was
  // attached (a fresh install has neither): it is adopted, not removed as an orphan.
  const recovering = loaded.source !== "file";
  if (loaded.source === "backup" || loaded.source === "lost") {
    logger.error("attachments file unreadable: recovering from its backup and the store", {
      path: file.path,
      source: loaded.source,
      problems: loaded.problems,
    });
  }

  sandboxes.clear();
  const adopted: string[] = [];
  for (const a of addresses) {
    if (a.subnetIndex < 1 || a.subnetIndex > plan.maxIndex) {
      logger.warn("address outside the configured pool; ignored", {
        sandbox_id: a.sandboxId,
        subnet_index: a.subnetIndex,
      });
      continue;
    }
    let record: AttachmentRecord | undefined = records.get(a.sandboxId);
    if (record === undefined && recovering) {
      const kind = adoptableKind(a.sandboxId, inventory);
      if (kind !== undefined) {
        // Name and policy are lost: no DNS name, and deny-all until the next attach or
        // SetEgressPolicy says otherwise (fail closed).
        record = { sandboxId: a.sandboxId, userId: a.userId, name: "", kind, egress: denyAllInput };
        adopted.push(a.sandboxId);
      }
    }
    sandboxes.set(a.sandboxId, stateFromAddress(plan, a, record));
  }
  if (adopted.length > 0) {
    logger.error("adopted sandboxes without an attachment record: deny-all, no DNS name", {
      path: file.path,
      source: loaded.source,
      sandbox_ids: adopted,
    });
  }
  const attached = [...sandboxes.values()].filter((s) => s.devices);
  const userStates = new Map<string, UserState>();
  for (const s of attached) {
    let u = userStates.get(s.userId);
    if (u === undefined) {
      u = newUserState(plan, s.userId, s.subnetIndex);
      userStates.set(s.userId, u);
    }
    u.members.add(s.sandboxId);
  }

  // The whole rule set, with every element, in one transaction.
  await nft.apply(
    nftScripts.load(plan.poolText, [...userStates.values()].map(userElements), attached.map(sandboxElements)),
  );

  // Orphans: product devices in this netns that no kept sandbox or user owns, and the
  // namespaces this service created for sandboxes that no longer exist.
  const wanted = new Set<string>([...[...userStates.values()].map((u) => u.bridge), ...attached.map(portOf)]);
  const orphans = findOrphans({
    links: inventory.links.keys(),
    namespaces: inventory.netns,
    wantedLinks: wanted,
    keptSandboxIds: new Set(attached.map((s) => s.sandboxId)),
    recordedSandboxIds: new Set(records.keys()),
  });
  const orphanLinks = orphans.links;
  const orphanNetns = orphans.namespaces;
  if (orphanLinks.length > 0 || orphanNetns.length > 0) {
    logger.info("removing orphaned devices", { links: orphanLinks, namespaces: orphanNetns });
    const error = await ip.remove(orphanLinks, orphanNetns);
    if (error !== undefined) logger.warn("some orphans could not be removed", { error });
  }

  // Re-create what is missing for the sandboxes that exist.
  for (const u of userStates.values()) await users.restore(u, inventory.links.get(u.bridge));
  let recreated = 0;
  for (const s of attached) {
    const u = userStates.get(s.userId);
    if (u === undefined) continue;
    const present =
      s.kind === "tap"
        ? inventory.links.has(tapName(s.sandboxId))
        : inventory.links.has(vethName(s.sandboxId)) && inventory.netns.has(netnsName(s.sandboxId));
    if (present) continue; // never touch a live netns: runsc may own its address now
    await devices.create(s.sandboxId, s.kind ?? "netns", u, s.address);
    recreated++;
  }
  try {
    ctx.saveRecords();
  } catch (e) {
    // The network is in place; attaches will fail until the file can be written again.
    logger.error("could not write the attachments file after reconciling", { path: file.path, error: e });
  }
  logger.info("reconciled", {
    sandboxes: attached.length,
    addresses_without_record: sandboxes.size - attached.length,
    users: userStates.size,
    recreated,
    orphan_links: orphanLinks.length,
    orphan_namespaces: orphanNetns.length,
  });
}
