import { Code, ConnectError } from "@connectrpc/connect";
import { type Logger, crashPoint, createKeyedLock } from "@bhatti/runtime";
import type { AttachmentFile } from "../adapters/attachment-file.js";
import type { IpLink } from "../adapters/ip-link.js";
import { type Nftables, nftScripts } from "../adapters/nftables.js";
import type { Addressing } from "../adapters/store-addressing.js";
import type { ResolverDirectory, UserResolver } from "../dns/user-resolver.js";
import type { AddressPlan } from "./address-plan.js";
import { type AttachRequest, createAttacher } from "./attach.js";
import { type EgressPolicy, type EgressPolicyInput, describePolicy } from "./egress-policy.js";
import type { NetworkContext } from "./network-context.js";
import { NetworkError } from "./network-error.js";
import {
  type SandboxNetworkView,
  type SandboxState,
  liveResolved,
  recordOf,
  sandboxElements,
  sandboxView,
} from "./network-state.js";
import { reconcile } from "./reconcile.js";
import { createResolverDirectory } from "./resolver-directory.js";
import { createSandboxDevices } from "./sandbox-devices.js";
import { type UserNetworks, createUserNetworks } from "./user-networks.js";

export type { AttachRequest } from "./attach.js";
export type { AttachmentKind, SandboxNetworkView } from "./network-state.js";

export interface NetworkHealth {
  ready: boolean;
  reconcileError: string | undefined;
  storeReachable: boolean;
  users: number;
  sandboxes: number;
  resolvers: number;
  resolverErrors: number;
}

/** The network service's operations; requests arrive validated (api/network-handlers.ts). */
export interface NetworkManager {
  /** Resolves once the first reconciliation has finished. */
  readonly ready: Promise<void>;
  attach(request: AttachRequest): Promise<SandboxNetworkView>;
  detach(sandboxId: string): Promise<boolean>;
  get(sandboxId: string): Promise<SandboxNetworkView>;
  setEgressPolicy(sandboxId: string, policy: EgressPolicy): Promise<EgressPolicyInput>;
  /**
   * Changes the name the user's resolver answers for an attached sandbox and persists it.
   * No device or firewall element is touched, so it is safe while runsc runs in the netns.
   */
  rename(sandboxId: string, name: string): Promise<SandboxNetworkView>;
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

export function createNetworkManager(deps: NetworkManagerDeps): NetworkManager {
  const { plan, addressing, ip, nft, file, logger } = deps;
  const sandboxes = new Map<string, SandboxState>();
  const sandboxLock = createKeyedLock();
  let reconciled = false;
  let reconcileError: string | undefined;
  let storeReachable = false;
  let closed = false;

  const users: UserNetworks = createUserNetworks({
    plan,
    ip,
    nft,
    logger,
    createResolver: deps.createResolver,
    directoryFor: (userId) =>
      createResolverDirectory({
        members: () => users.get(userId)?.members ?? [],
        sandboxes,
        sandboxLock,
        nft,
      }),
  });
  const ctx: NetworkContext = {
    plan,
    addressing,
    ip,
    nft,
    file,
    logger,
    sandboxes,
    users,
    devices: createSandboxDevices(ip, logger),
    saveRecords: () => file.save([...sandboxes.values()].filter((s) => s.devices).map(recordOf)),
    noteStore: (p) =>
      p.then(
        (v) => {
          storeReachable = true;
          return v;
        },
        (e: unknown) => {
          if (ConnectError.from(e).code === Code.Unavailable) storeReachable = false;
          throw e;
        },
      ),
  };
  const attacher = createAttacher(ctx);

  const ready = (async () => {
    const delay = deps.retryDelayMs ?? 1000;
    for (;;) {
      if (closed) throw new Error("closed");
      try {
        await reconcile(ctx);
        reconciled = true;
        reconcileError = undefined;
        return;
      } catch (e) {
        reconcileError = ConnectError.from(e).rawMessage;
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
            new NetworkError(
              "unavailable",
              `network service is not ready: ${reconcileError ?? "reconciling"}`,
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

  return {
    ready,
    async attach(request) {
      await whenReady();
      return sandboxLock.run(request.sandboxId, () => attacher.attachLocked(request));
    },

    async detach(sandboxId) {
      await whenReady();
      return sandboxLock.run(sandboxId, async () => {
        const s = sandboxes.get(sandboxId);
        // The name leaves DNS before the address goes back to the pool.
        sandboxes.delete(sandboxId);
        if (s?.devices) {
          try {
            await Promise.all([
              ctx.devices.remove(sandboxId),
              nft.apply(nftScripts.removeSandbox(sandboxElements(s), liveResolved(s))),
            ]);
          } catch (e) {
            sandboxes.set(sandboxId, s); // still attached; a retry finishes the job
            throw e;
          }
          crashPoint("network.detach.devices");
          await users.leave(s.userId, sandboxId);
          ctx.saveRecords();
          crashPoint("network.detach.recorded");
        }
        const released = await ctx.noteStore(addressing.release(sandboxId));
        return s !== undefined || released;
      });
    },

    async get(sandboxId) {
      await whenReady();
      const s = sandboxes.get(sandboxId);
      if (s === undefined) throw new NetworkError("not-found", `sandbox ${sandboxId} has no address`);
      return sandboxView(plan, s);
    },

    async setEgressPolicy(sandboxId, policy) {
      await whenReady();
      return sandboxLock.run(sandboxId, async () => {
        const s = sandboxes.get(sandboxId);
        if (s === undefined || !s.devices)
          throw new NetworkError("not-found", `sandbox ${sandboxId} is not attached`);
        await nft.apply(nftScripts.replacePolicy(s.address, s.policy, policy, liveResolved(s)));
        s.policy = policy;
        s.resolved.clear();
        ctx.saveRecords();
        return describePolicy(policy);
      });
    },

    async rename(sandboxId, name) {
      await whenReady();
      // Under the sandbox's lock, so it orders with an attach (which also sets the name) and a detach.
      return sandboxLock.run(sandboxId, async () => {
        const s = sandboxes.get(sandboxId);
        if (s === undefined || !s.devices)
          throw new NetworkError("not-found", `sandbox ${sandboxId} is not attached`);
        s.name = name;
        ctx.saveRecords();
        return sandboxView(plan, s);
      });
    },

    health() {
      const userList = users.list();
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
      await users.closeResolvers();
      addressing.close();
    },
  };
}
