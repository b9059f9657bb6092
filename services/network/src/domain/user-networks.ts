import { type Logger, createKeyedLock } from "@bhatti/runtime";
import type { BridgeSpec, IpLink } from "../adapters/ip-link.js";
import { type Nftables, nftScripts } from "../adapters/nftables.js";
import type { ResolverDirectory, UserResolver } from "../dns/user-resolver.js";
import { type AddressPlan, SUBNET_PREFIX, macForAddress } from "./address-plan.js";
import { bridgeName } from "./device-names.js";
import { formatIpv4 } from "./ipv4.js";
import { type UserState, userElements } from "./network-state.js";

/**
 * Each user's network: a bridge with the subnet's gateway address, its firewall elements and a
 * DNS resolver on the gateway. It exists while the user has a sandbox with devices; changes to
 * one user's network are serialised under that user's lock.
 */
export interface UserNetworks {
  get(userId: string): UserState | undefined;
  list(): UserState[];
  /** Under the user lock: joins the user's network if it is up already. */
  joinIfUp(userId: string, sandboxId: string): Promise<UserState | undefined>;
  /** Under the user lock: brings the user's network up if it is not, and joins it. */
  join(userId: string, subnetIndex: number, sandboxId: string): Promise<UserState>;
  /** Under the user lock: forgets a member; the last one takes the user's network with it. */
  leave(userId: string, sandboxId: string): Promise<void>;
  /**
   * Reconciliation: a user rebuilt from its attached sandboxes. Its bridge is brought back if
   * the kernel has none (`bridgeIndex` undefined), then it is kept and its resolver started.
   */
  restore(u: UserState, bridgeIndex: number | undefined): Promise<void>;
  /** Stops the resolvers; bridges and rules stay, so sandboxes keep their network. */
  closeResolvers(): Promise<void>;
}

export interface UserNetworksDeps {
  plan: AddressPlan;
  ip: IpLink;
  nft: Nftables;
  logger: Logger;
  createResolver(gateway: string, directory: ResolverDirectory): UserResolver;
  /** The resolver's view of the user's sandboxes. */
  directoryFor(userId: string): ResolverDirectory;
}

/** The state of a user's network on subnet `subnetIndex`, before anything exists. */
export function newUserState(plan: AddressPlan, userId: string, subnetIndex: number): UserState {
  return {
    userId,
    subnetIndex,
    bridge: bridgeName(subnetIndex),
    bridgeIndex: 0,
    gateway: formatIpv4(plan.subnet(subnetIndex).gateway),
    members: new Set(),
    resolver: undefined,
    resolverError: undefined,
  };
}

export function createUserNetworks(deps: UserNetworksDeps): UserNetworks {
  const { plan, ip, nft, logger } = deps;
  const users = new Map<string, UserState>();
  const userLock = createKeyedLock();

  const bridgeSpec = (u: UserState): BridgeSpec => ({
    name: u.bridge,
    mac: macForAddress(plan.subnet(u.subnetIndex).gateway),
    gatewayCidr: `${u.gateway}/${SUBNET_PREFIX}`,
  });

  async function startResolver(u: UserState): Promise<void> {
    const resolver = deps.createResolver(u.gateway, deps.directoryFor(u.userId));
    try {
      await resolver.start();
      u.resolver = resolver;
      u.resolverError = undefined;
    } catch (e) {
      // Like v1: without a resolver only name lookups are lost; the sandbox still starts.
      u.resolverError = (e as Error).message;
      logger.warn("dns resolver did not start", {
        bridge: u.bridge,
        gateway: u.gateway,
        error: u.resolverError,
      });
    }
  }

  /** Under the user lock: the bridge, its firewall elements and the resolver exist. */
  async function ensureUser(userId: string, subnetIndex: number): Promise<UserState> {
    const existing = users.get(userId);
    if (existing !== undefined) return existing;
    const u = newUserState(plan, userId, subnetIndex);
    const bridge = bridgeSpec(u);
    try {
      await ip.bridgeUp(bridge).catch(async (e: unknown) => {
        // A bridge left by a crash mid-teardown: replace it once.
        logger.info("creating bridge failed; replacing a leftover", {
          bridge: u.bridge,
          error: (e as Error).message,
        });
        await ip.remove([u.bridge], []);
        await ip.bridgeUp(bridge);
      });
      u.bridgeIndex = await ip.linkIndex(u.bridge);
      await nft.apply(nftScripts.addUser(userElements(u)));
    } catch (e) {
      await teardownUser(u);
      throw e;
    }
    await startResolver(u);
    users.set(userId, u);
    return u;
  }

  async function teardownUser(u: UserState): Promise<void> {
    users.delete(u.userId);
    await u.resolver?.close();
    u.resolver = undefined;
    const [linkError] = await Promise.all([
      ip.remove([u.bridge], []),
      nft.apply(nftScripts.removeUser(userElements(u))).catch((e: unknown) => {
        logger.error("could not remove user firewall elements", { bridge: u.bridge, error: e });
      }),
    ]);
    if (linkError !== undefined)
      logger.error("could not remove bridge", { bridge: u.bridge, error: linkError });
  }

  return {
    get: (userId) => users.get(userId),
    list: () => [...users.values()],
    joinIfUp: (userId, sandboxId) =>
      userLock.run(userId, async () => {
        const u = users.get(userId);
        u?.members.add(sandboxId);
        return u;
      }),
    join: (userId, subnetIndex, sandboxId) =>
      userLock.run(userId, async () => {
        const u = await ensureUser(userId, subnetIndex);
        u.members.add(sandboxId);
        return u;
      }),
    leave: (userId, sandboxId) =>
      userLock.run(userId, async () => {
        const u = users.get(userId);
        if (u === undefined) return;
        u.members.delete(sandboxId);
        if (u.members.size === 0) await teardownUser(u);
      }),
    async restore(u, bridgeIndex) {
      if (bridgeIndex === undefined) await ip.bridgeUp(bridgeSpec(u));
      u.bridgeIndex = bridgeIndex ?? (await ip.linkIndex(u.bridge));
      users.set(u.userId, u);
      await startResolver(u);
    },
    async closeResolvers() {
      await Promise.all([...users.values()].map((u) => u.resolver?.close()));
    },
  };
}
