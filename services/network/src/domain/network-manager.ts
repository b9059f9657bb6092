import { Code, ConnectError } from "@connectrpc/connect";
import { type Logger, crashPoint } from "@bhatti/runtime";
import type { AttachmentFile, AttachmentRecord } from "../adapters/attachment-file.js";
import type { IpLink, NetnsSpec } from "../adapters/ip-link.js";
import { type Nftables, type SandboxElements, type UserElements, nftScripts } from "../adapters/nftables.js";
import type { Addressing, ReservedAddress } from "../adapters/store-addressing.js";
import type { ResolverDirectory, UserResolver } from "../dns/user-resolver.js";
import { type AddressPlan, FIRST_HOST, LAST_HOST, SUBNET_PREFIX, macForAddress } from "./address-plan.js";
import {
  SANDBOX_INTERFACE,
  bridgeName,
  isSandboxId,
  netnsName,
  netnsPath,
  tapName,
  vethName,
} from "./device-names.js";
import {
  type EgressPolicy,
  type EgressPolicyInput,
  InvalidPolicyError,
  describePolicy,
  validateEgressPolicy,
} from "./egress-policy.js";
import { formatIpv4, parseIpv4 } from "./ipv4.js";
import { createKeyedLock } from "./keyed-lock.js";
import { findOrphans } from "./orphans.js";

export type AttachmentKind = "netns" | "tap";

export interface AttachInput {
  sandboxId: string;
  userId: string;
  name: string;
  kind: AttachmentKind | undefined;
  egress: EgressPolicyInput | undefined;
  /** Dotted address to keep, or "" for any. */
  requestedAddress: string;
}

/** A sandbox's network as the API returns it. */
export interface SandboxNetworkView {
  sandboxId: string;
  userId: string;
  /** Undefined for an address the store holds but this service never attached. */
  kind: AttachmentKind | undefined;
  netnsPath: string;
  interfaceName: string;
  tapName: string;
  hostInterface: string;
  bridge: string;
  address: string;
  prefixLength: number;
  gateway: string;
  mac: string;
  dnsServer: string;
  egress: EgressPolicyInput;
}

export interface NetworkHealth {
  ready: boolean;
  reconcileError: string | undefined;
  storeReachable: boolean;
  users: number;
  sandboxes: number;
  resolvers: number;
  resolverErrors: number;
}

export interface NetworkManager {
  /** Resolves once the first reconciliation has finished. */
  readonly ready: Promise<void>;
  attach(input: AttachInput): Promise<SandboxNetworkView>;
  detach(sandboxId: string): Promise<boolean>;
  get(sandboxId: string): Promise<SandboxNetworkView>;
  setEgressPolicy(sandboxId: string, input: EgressPolicyInput | undefined): Promise<EgressPolicyInput>;
  health(): NetworkHealth;
  /** Stops the resolvers; devices and rules stay, so sandboxes keep their network. */
  close(): Promise<void>;
}

export interface NetworkManagerDeps {
  plan: AddressPlan;
  addressing: Addressing;
  ip: IpLink;
  nft: Nftables;
  file: AttachmentFile;
  createResolver(gateway: string, directory: ResolverDirectory): UserResolver;
  logger: Logger;
  /** How long an RPC waits for the start-up reconciliation before failing with Unavailable. */
  readyTimeoutMs?: number;
  /** Delay between reconciliation attempts while the store is unreachable. */
  retryDelayMs?: number;
}

interface SandboxState {
  sandboxId: string;
  userId: string;
  name: string;
  kind: AttachmentKind | undefined;
  policy: EgressPolicy;
  subnetIndex: number;
  host: number;
  address: string;
  /** False for an address the store holds that this service has no record of. */
  devices: boolean;
  /** Addresses the resolver allowed for an allow-list policy, with their expiry (ms). */
  resolved: Map<string, number>;
}

interface UserState {
  userId: string;
  subnetIndex: number;
  bridge: string;
  /** The bridge's ifindex (the sandbox netns side names it by index). */
  bridgeIndex: number;
  gateway: string;
  /** Sandboxes with devices on the bridge (attaching ones included). */
  members: Set<string>;
  resolver: UserResolver | undefined;
  resolverError: string | undefined;
}

const namePattern = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/;
const userIdPattern = /^[A-Za-z0-9_-]{1,64}$/;
/** Resolved allow-list addresses stay open at least this long (clients cache beyond TTLs). */
const MIN_RESOLVED_SECONDS = 300;
const denyAllInput: EgressPolicyInput = { mode: "deny-all", allowCidrs: [], allowHosts: [] };
const MAX_RESOLVED_SECONDS = 86_400;

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

export function createNetworkManager(deps: NetworkManagerDeps): NetworkManager {
  const { plan, addressing, ip, nft, file, logger } = deps;
  const sandboxes = new Map<string, SandboxState>();
  const users = new Map<string, UserState>();
  const sandboxLock = createKeyedLock();
  /** "<subnet index>:<host>" of addresses being given right now (see predictHost). */
  const pendingHosts = new Set<string>();
  const userLock = createKeyedLock();
  let reconciled = false;
  let reconcileError: string | undefined;
  let storeReachable = false;
  let closed = false;

  const userElements = (u: UserState): UserElements => ({ bridge: u.bridge, gateway: u.gateway });
  const portOf = (s: SandboxState) => (s.kind === "tap" ? tapName(s.sandboxId) : vethName(s.sandboxId));
  const sandboxElements = (s: SandboxState): SandboxElements => ({
    port: portOf(s),
    address: s.address,
    policy: s.policy,
  });
  const netnsSpec = (sandboxId: string, address: string, bridge: string, gateway: string): NetnsSpec => ({
    netns: netnsName(sandboxId),
    veth: vethName(sandboxId),
    bridge,
    mac: macForAddress(parseIpv4(address) ?? 0),
    addressCidr: `${address}/${SUBNET_PREFIX}`,
    gateway,
  });
  const recordOf = (s: SandboxState): AttachmentRecord => ({
    sandboxId: s.sandboxId,
    userId: s.userId,
    name: s.name,
    kind: s.kind ?? "netns",
    egress: describePolicy(s.policy),
  });
  const saveRecords = () => file.save([...sandboxes.values()].filter((s) => s.devices).map(recordOf));
  const liveResolved = (s: SandboxState) => [...s.resolved.keys()];

  function view(s: SandboxState): SandboxNetworkView {
    const subnet = plan.subnet(s.subnetIndex);
    const gateway = formatIpv4(subnet.gateway);
    const isNetns = s.kind === "netns";
    return {
      sandboxId: s.sandboxId,
      userId: s.userId,
      kind: s.kind,
      netnsPath: isNetns ? netnsPath(s.sandboxId) : "",
      interfaceName: isNetns ? SANDBOX_INTERFACE : "",
      tapName: s.kind === "tap" ? tapName(s.sandboxId) : "",
      hostInterface: isNetns ? vethName(s.sandboxId) : "",
      bridge: bridgeName(s.subnetIndex),
      address: s.address,
      prefixLength: SUBNET_PREFIX,
      gateway,
      mac: macForAddress(parseIpv4(s.address) ?? 0),
      dnsServer: gateway,
      egress: describePolicy(s.policy),
    };
  }

  function stateFromAddress(a: ReservedAddress, rec: AttachmentRecord | undefined): SandboxState {
    const devices = rec !== undefined && rec.userId === a.userId;
    let policy: EgressPolicy = { mode: "allow-all" };
    if (devices) {
      try {
        policy = validateEgressPolicy(rec.egress);
      } catch {
        // A record this version cannot read fails closed.
        policy = { mode: "deny-all" };
      }
    }
    return {
      sandboxId: a.sandboxId,
      userId: a.userId,
      name: devices ? rec.name : "",
      kind: devices ? rec.kind : undefined,
      policy,
      subnetIndex: a.subnetIndex,
      host: a.host,
      address: formatIpv4(plan.address(a.subnetIndex, a.host)),
      devices,
      resolved: new Map(),
    };
  }

  // --- DNS directory of one user ---

  function directoryFor(userId: string): ResolverDirectory {
    const mine = () =>
      [...(users.get(userId)?.members ?? [])].map((id) => sandboxes.get(id)).filter((s) => s !== undefined);
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

  // --- users: bridge, firewall elements, resolver ---

  async function startResolver(u: UserState): Promise<void> {
    const resolver = deps.createResolver(u.gateway, directoryFor(u.userId));
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
    const subnet = plan.subnet(subnetIndex);
    const u: UserState = {
      userId,
      subnetIndex,
      bridge: bridgeName(subnetIndex),
      bridgeIndex: 0,
      gateway: formatIpv4(subnet.gateway),
      members: new Set(),
      resolver: undefined,
      resolverError: undefined,
    };
    const bridge = {
      name: u.bridge,
      mac: macForAddress(subnet.gateway),
      gatewayCidr: `${u.gateway}/${SUBNET_PREFIX}`,
    };
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

  /** Under the user lock: forgets a member; the last one takes the user's network with it. */
  function leaveUser(userId: string, sandboxId: string): Promise<void> {
    return userLock.run(userId, async () => {
      const u = users.get(userId);
      if (u === undefined) return;
      u.members.delete(sandboxId);
      if (u.members.size === 0) await teardownUser(u);
    });
  }

  // --- sandbox devices ---

  async function removeDevices(sandboxId: string): Promise<void> {
    const error = await ip.remove([vethName(sandboxId), tapName(sandboxId)], [netnsName(sandboxId)]);
    if (error !== undefined) throw new Error(`could not remove devices of ${sandboxId}: ${error}`);
  }

  /** The netns with its configured eth0 and veth pair, or the TAP, on the user's bridge. */
  async function createDevices(
    sandboxId: string,
    kind: AttachmentKind,
    u: UserState,
    address: string,
  ): Promise<void> {
    const make = () =>
      kind === "tap"
        ? ip.tapCreate({ tap: tapName(sandboxId), bridge: u.bridge })
        : ip.netnsCreate(netnsSpec(sandboxId, address, u.bridge, u.gateway), u.bridgeIndex);
    try {
      await make();
    } catch (e) {
      // Leftovers of a crash (a netns without its veth...) block creation: clear them once.
      logger.info("creating devices failed; clearing leftovers and retrying", {
        sandbox_id: sandboxId,
        error: (e as Error).message,
      });
      await removeDevices(sandboxId);
      await make();
    }
  }

  // --- readiness and reconciliation ---

  /** The kind of the devices a sandbox has in the inventory, if it has any. */
  function adoptableKind(
    sandboxId: string,
    inventory: { links: ReadonlyMap<string, number>; netns: ReadonlySet<string> },
  ): AttachmentKind | undefined {
    if (inventory.links.has(tapName(sandboxId))) return "tap";
    if (inventory.links.has(vethName(sandboxId)) || inventory.netns.has(netnsName(sandboxId))) return "netns";
    return undefined;
  }

  async function reconcile(): Promise<void> {
    const addresses = await addressing.list();
    storeReachable = true;
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
      let record = records.get(a.sandboxId);
      if (record === undefined && recovering) {
        const kind = adoptableKind(a.sandboxId, inventory);
        if (kind !== undefined) {
          // Name and policy are lost: no DNS name, and deny-all until the next attach or
          // SetEgressPolicy says otherwise (fail closed).
          record = { sandboxId: a.sandboxId, userId: a.userId, name: "", kind, egress: denyAllInput };
          adopted.push(a.sandboxId);
        }
      }
      sandboxes.set(a.sandboxId, stateFromAddress(a, record));
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
        u = {
          userId: s.userId,
          subnetIndex: s.subnetIndex,
          bridge: bridgeName(s.subnetIndex),
          bridgeIndex: 0,
          gateway: formatIpv4(plan.subnet(s.subnetIndex).gateway),
          members: new Set(),
          resolver: undefined,
          resolverError: undefined,
        };
        userStates.set(s.userId, u);
      }
      u.members.add(s.sandboxId);
    }

    // The whole rule set, with every element, in one transaction.
    await nft.apply(
      nftScripts.load(
        plan.poolText,
        [...userStates.values()].map(userElements),
        attached.map(sandboxElements),
      ),
    );

    // Orphans: product devices in this netns that no kept sandbox or user owns, and the
    // namespaces this service created for sandboxes that no longer exist.
    const wanted = new Set<string>([
      ...[...userStates.values()].map((u) => u.bridge),
      ...attached.map(portOf),
    ]);
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
    for (const u of userStates.values()) {
      if (!inventory.links.has(u.bridge)) {
        const subnet = plan.subnet(u.subnetIndex);
        await ip.bridgeUp({
          name: u.bridge,
          mac: macForAddress(subnet.gateway),
          gatewayCidr: `${u.gateway}/${SUBNET_PREFIX}`,
        });
      }
      u.bridgeIndex = inventory.links.get(u.bridge) ?? (await ip.linkIndex(u.bridge));
      users.set(u.userId, u);
      await startResolver(u);
    }
    let recreated = 0;
    for (const s of attached) {
      const u = userStates.get(s.userId);
      if (u === undefined) continue;
      const present =
        s.kind === "tap"
          ? inventory.links.has(tapName(s.sandboxId))
          : inventory.links.has(vethName(s.sandboxId)) && inventory.netns.has(netnsName(s.sandboxId));
      if (present) continue; // never touch a live netns: runsc may own its address now
      await createDevices(s.sandboxId, s.kind ?? "netns", u, s.address);
      recreated++;
    }
    try {
      saveRecords();
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

  const ready = (async () => {
    const delay = deps.retryDelayMs ?? 1000;
    for (;;) {
      if (closed) throw new Error("closed");
      try {
        await reconcile();
        reconciled = true;
        reconcileError = undefined;
        return;
      } catch (e) {
        const err = ConnectError.from(e);
        if (err.code === Code.Unavailable) storeReachable = false;
        reconcileError = err.rawMessage;
        logger.warn("reconciliation failed; retrying", { error: reconcileError, retry_in_ms: delay });
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  })();
  ready.catch(() => undefined);

  async function whenReady(): Promise<void> {
    if (reconciled) return;
    const timeout = deps.readyTimeoutMs ?? 5000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new ConnectError(
              `network service is not ready: ${reconcileError ?? "reconciling"}`,
              Code.Unavailable,
            ),
          ),
        timeout,
      );
    });
    try {
      await Promise.race([ready, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  function parsePolicy(input: EgressPolicyInput | undefined): EgressPolicy {
    try {
      return validateEgressPolicy(input ?? { mode: "allow-all", allowCidrs: [], allowHosts: [] });
    } catch (e) {
      if (e instanceof InvalidPolicyError) throw invalid(e.message);
      throw e;
    }
  }

  const noteStore = <T>(p: Promise<T>): Promise<T> =>
    p.then(
      (v) => {
        storeReachable = true;
        return v;
      },
      (e: unknown) => {
        if (ConnectError.from(e).code === Code.Unavailable) storeReachable = false;
        throw e;
      },
    );

  async function attachLocked(
    input: AttachInput,
    policy: EgressPolicy,
    requested: { index: number; host: number } | undefined,
  ): Promise<SandboxNetworkView> {
    const { sandboxId, userId } = input;
    const kind = input.kind as AttachmentKind;
    const existing = sandboxes.get(sandboxId);
    if (existing !== undefined && existing.userId !== userId) {
      throw new ConnectError(`sandbox ${sandboxId} is attached for another user`, Code.FailedPrecondition);
    }
    if (existing?.devices && existing.kind !== kind) {
      throw new ConnectError(
        `sandbox ${sandboxId} is attached as ${existing.kind}, not ${kind}`,
        Code.FailedPrecondition,
      );
    }
    if (
      existing !== undefined &&
      requested !== undefined &&
      (existing.subnetIndex !== requested.index || existing.host !== requested.host)
    ) {
      throw new ConnectError(
        `sandbox ${sandboxId} already has address ${existing.address}, not ${input.requestedAddress}`,
        Code.FailedPrecondition,
      );
    }

    if (existing?.devices) {
      // Re-attach (before a start or restore): put address and route back, update name/policy.
      const u = users.get(userId);
      if (u === undefined) throw new ConnectError(`user network of ${userId} is missing`, Code.Internal);
      if (kind === "netns") {
        try {
          await ip.netnsConfigure(netnsSpec(existing.sandboxId, existing.address, u.bridge, u.gateway));
        } catch (e) {
          logger.info("netns needs re-creating", { sandbox_id: sandboxId, error: (e as Error).message });
          await removeDevices(sandboxId);
          await createDevices(sandboxId, kind, u, existing.address);
        }
      }
      // No policy in the request keeps the current one (set at creation or by SetEgressPolicy).
      if (
        input.egress !== undefined &&
        JSON.stringify(describePolicy(existing.policy)) !== JSON.stringify(describePolicy(policy))
      ) {
        await nft.apply(
          nftScripts.replacePolicy(existing.address, existing.policy, policy, liveResolved(existing)),
        );
        existing.policy = policy;
        existing.resolved.clear();
      }
      existing.name = input.name;
      saveRecords();
      return view(existing);
    }

    // A user whose bridge is up already: make the links while the store reserves the
    // address (they need no address), so the store round trip is off the critical path.
    let joined = false;
    const known = await userLock.run(userId, async () => {
      const user = users.get(userId);
      if (user !== undefined) {
        user.members.add(sandboxId);
        joined = true;
      }
      return user;
    });
    if (known !== undefined && requested !== undefined && requested.index !== known.subnetIndex) {
      await leaveUser(userId, sandboxId);
      throw new ConnectError(
        `requested address ${input.requestedAddress} is not in the user's subnet ${formatIpv4(plan.subnet(known.subnetIndex).base)}/${SUBNET_PREFIX}`,
        Code.FailedPrecondition,
      );
    }
    const started = performance.now();
    const phases: Record<string, number> = {};
    const timed = <T>(phase: string, p: Promise<T>): Promise<T> =>
      p.finally(() => {
        phases[phase] = Math.round((performance.now() - started) * 10) / 10;
      });
    // For a user whose bridge is up, predict the address (the lowest host number no sandbox
    // holds or is being given; this service is the only one that reserves addresses) and
    // build and configure the netns with it while the store confirms the reservation, so the
    // store's round trip is off the critical path. A wrong guess is reconfigured below.
    const predicted =
      known === undefined
        ? undefined
        : (requested?.host ??
          (existing !== undefined && existing.subnetIndex === known.subnetIndex
            ? existing.host
            : predictHost(known.subnetIndex)));
    const pendingKey =
      known !== undefined && predicted !== undefined ? `${known.subnetIndex}:${predicted}` : undefined;
    if (pendingKey !== undefined) pendingHosts.add(pendingKey);
    const early =
      known === undefined
        ? undefined
        : timed(
            "early_done_ms",
            (async () => {
              if (kind === "tap") {
                await createDevices(sandboxId, kind, known, "");
                return undefined;
              }
              if (predicted === undefined) return undefined; // full (says our view): the store decides
              const address = formatIpv4(plan.address(known.subnetIndex, predicted));
              await createDevices(sandboxId, kind, known, address);
              return address;
            })(),
          );
    early?.catch(() => undefined); // awaited below; rollback handles its failure
    const newlyReserved = existing === undefined;
    let s: SandboxState | undefined;
    try {
      const reserve = (host: number) => noteStore(addressing.reserve(userId, sandboxId, host));
      let reserved: ReservedAddress;
      try {
        reserved = await timed("reserved_ms", reserve(requested?.host ?? predicted ?? 0));
      } catch (e) {
        const guessTaken = requested === undefined && predicted !== undefined;
        if (!guessTaken || ConnectError.from(e).code !== Code.AlreadyExists) throw e;
        reserved = await reserve(0); // someone else holds the guess: let the store choose
      }
      s = { ...stateFromAddress(reserved, undefined), name: input.name, kind, policy, devices: true };
      if (requested !== undefined && reserved.subnetIndex !== requested.index) {
        throw new ConnectError(
          `requested address ${input.requestedAddress} is not in the user's subnet ${formatIpv4(plan.subnet(reserved.subnetIndex).base)}/${SUBNET_PREFIX}`,
          Code.FailedPrecondition,
        );
      }
      if (known !== undefined && known.subnetIndex !== reserved.subnetIndex) {
        throw new ConnectError(
          `store gave user ${userId} subnet ${reserved.subnetIndex}, but its bridge is ${known.bridge}`,
          Code.Internal,
        );
      }
      sandboxes.set(sandboxId, s);
      saveRecords(); // before the sandbox is usable, so a crash leaves something to reconcile
      crashPoint("network.attach.recorded");
      const u =
        known ??
        (await userLock.run(userId, async () => {
          const user = await ensureUser(userId, reserved.subnetIndex);
          user.members.add(sandboxId);
          joined = true;
          return user;
        }));
      const state = s;
      const restrictive = state.policy.mode !== "allow-all";
      await Promise.all([
        (async () => {
          const configured = await early;
          if (kind === "tap") {
            if (early === undefined) await timed("created_ms", createDevices(sandboxId, kind, u, ""));
          } else if (configured === undefined) {
            await timed("created_ms", createDevices(sandboxId, kind, u, state.address));
          } else if (configured !== state.address) {
            // A wrong guess: the netns exists, with another address.
            await timed(
              "configured_ms",
              ip.netnsConfigure(netnsSpec(sandboxId, state.address, u.bridge, u.gateway)),
            );
          }
        })(),
        restrictive
          ? timed("nft_done_ms", nft.apply(nftScripts.addSandbox(sandboxElements(state))))
          : undefined,
      ]);
      crashPoint("network.attach.devices");
      if (!restrictive) addAntiSpoofingLater(state);
      phases["total_ms"] = Math.round((performance.now() - started) * 10) / 10;
      logger.debug("attached", { sandbox_id: sandboxId, address: state.address, ...phases });
      return view(state);
    } catch (e) {
      logger.warn("attach failed; rolling back", { sandbox_id: sandboxId, error: e });
      await early?.catch(() => undefined);
      await rollback(sandboxId, s, { joined, userId, newlyReserved, previous: existing });
      throw e;
    } finally {
      if (pendingKey !== undefined) pendingHosts.delete(pendingKey);
    }
  }

  /** The lowest host number of the subnet that no sandbox holds or is being given. */
  function predictHost(subnetIndex: number): number | undefined {
    const taken = new Set<number>();
    for (const s of sandboxes.values()) if (s.subnetIndex === subnetIndex) taken.add(s.host);
    for (const key of pendingHosts) {
      const [index, host] = key.split(":").map(Number);
      if (index === subnetIndex && host !== undefined) taken.add(host);
    }
    for (let host = FIRST_HOST; host <= LAST_HOST; host++) if (!taken.has(host)) return host;
    return undefined;
  }

  /**
   * A restrictive policy must be in force before the sandbox can send, so its elements are
   * added before the attach returns. An allow-all sandbox only has anti-spoofing elements,
   * which protect its siblings rather than restrict it: they are added once the reply is on
   * its way, so the nft process (the slowest step) is not on the attach's critical path. A
   * detach that came first wins (the sandbox is no longer in the map), and the nft queue
   * keeps the order of later changes.
   */
  function addAntiSpoofingLater(s: SandboxState): void {
    setImmediate(() => {
      if (sandboxes.get(s.sandboxId) !== s) return;
      nft
        .apply(nftScripts.addSandbox(sandboxElements(s)))
        .catch((e: unknown) =>
          logger.error("could not add anti-spoofing elements", { sandbox_id: s.sandboxId, error: e }),
        );
    });
  }

  async function rollback(
    sandboxId: string,
    s: SandboxState | undefined,
    done: { joined: boolean; userId: string; newlyReserved: boolean; previous: SandboxState | undefined },
  ): Promise<void> {
    const steps: Promise<unknown>[] = [removeDevices(sandboxId)];
    if (s !== undefined) steps.push(nft.apply(nftScripts.removeSandbox(sandboxElements(s), [])));
    const results = await Promise.allSettled(steps);
    for (const r of results) {
      if (r.status === "rejected")
        logger.error("rollback step failed", { sandbox_id: sandboxId, error: r.reason });
    }
    if (done.joined) {
      await leaveUser(done.userId, sandboxId).catch((e: unknown) =>
        logger.error("rollback of user network failed", { error: e }),
      );
    }
    if (done.previous !== undefined) sandboxes.set(sandboxId, done.previous);
    else sandboxes.delete(sandboxId);
    try {
      saveRecords();
    } catch (e) {
      logger.error("rollback could not save records", { error: e });
    }
    if (done.newlyReserved) {
      await addressing
        .release(sandboxId)
        .catch((e: unknown) =>
          logger.error("rollback could not release address", { sandbox_id: sandboxId, error: e }),
        );
    }
  }

  return {
    ready,
    async attach(input) {
      if (!isSandboxId(input.sandboxId))
        throw invalid(`sandbox_id "${input.sandboxId}" is not 16 lowercase hex chars`);
      if (!userIdPattern.test(input.userId)) throw invalid(`user_id "${input.userId}" is invalid`);
      if (!namePattern.test(input.name)) throw invalid(`sandbox_name "${input.name}" is invalid`);
      if (input.kind === undefined) throw invalid("kind must be NETNS or TAP");
      const policy = parsePolicy(input.egress);
      let requested: { index: number; host: number } | undefined;
      if (input.requestedAddress !== "") {
        const n = parseIpv4(input.requestedAddress);
        requested = n === undefined ? undefined : plan.locate(n);
        if (requested === undefined) {
          throw invalid(
            `requested_address "${input.requestedAddress}" is not a usable address of pool ${plan.poolText}`,
          );
        }
      }
      await whenReady();
      return sandboxLock.run(input.sandboxId, () => attachLocked(input, policy, requested));
    },

    async detach(sandboxId) {
      if (!isSandboxId(sandboxId)) throw invalid(`sandbox_id "${sandboxId}" is not 16 lowercase hex chars`);
      await whenReady();
      return sandboxLock.run(sandboxId, async () => {
        const s = sandboxes.get(sandboxId);
        // The name leaves DNS before the address goes back to the pool.
        sandboxes.delete(sandboxId);
        if (s?.devices) {
          try {
            await Promise.all([
              removeDevices(sandboxId),
              nft.apply(nftScripts.removeSandbox(sandboxElements(s), liveResolved(s))),
            ]);
          } catch (e) {
            sandboxes.set(sandboxId, s); // still attached; a retry finishes the job
            throw e;
          }
          crashPoint("network.detach.devices");
          await leaveUser(s.userId, sandboxId);
          saveRecords();
          crashPoint("network.detach.recorded");
        }
        const released = await noteStore(addressing.release(sandboxId));
        return s !== undefined || released;
      });
    },

    async get(sandboxId) {
      if (!isSandboxId(sandboxId)) throw invalid(`sandbox_id "${sandboxId}" is not 16 lowercase hex chars`);
      await whenReady();
      const s = sandboxes.get(sandboxId);
      if (s === undefined) throw new ConnectError(`sandbox ${sandboxId} has no address`, Code.NotFound);
      return view(s);
    },

    async setEgressPolicy(sandboxId, input) {
      if (!isSandboxId(sandboxId)) throw invalid(`sandbox_id "${sandboxId}" is not 16 lowercase hex chars`);
      const policy = parsePolicy(input);
      await whenReady();
      return sandboxLock.run(sandboxId, async () => {
        const s = sandboxes.get(sandboxId);
        if (s === undefined || !s.devices)
          throw new ConnectError(`sandbox ${sandboxId} is not attached`, Code.NotFound);
        await nft.apply(nftScripts.replacePolicy(s.address, s.policy, policy, liveResolved(s)));
        s.policy = policy;
        s.resolved.clear();
        saveRecords();
        return describePolicy(policy);
      });
    },

    health() {
      const userList = [...users.values()];
      return {
        ready: reconciled,
        reconcileError,
        storeReachable,
        users: userList.length,
        sandboxes: [...sandboxes.values()].filter((s) => s.devices).length,
        resolvers: userList.filter((u) => u.resolver !== undefined).length,
        resolverErrors: userList.filter((u) => u.resolverError !== undefined).length,
      };
    },

    async close() {
      closed = true;
      await Promise.all([...users.values()].map((u) => u.resolver?.close()));
      addressing.close();
    },
  };
}
