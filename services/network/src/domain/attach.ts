import { Code, ConnectError } from "@connectrpc/connect";
import { createUndoStack, crashPoint } from "@bhatti/runtime";
import { nftScripts } from "../adapters/nftables.js";
import type { ReservedAddress } from "../adapters/store-addressing.js";
import { FIRST_HOST, LAST_HOST, SUBNET_PREFIX } from "./address-plan.js";
import { ALLOW_ALL, type EgressPolicy, describePolicy } from "./egress-policy.js";
import { formatIpv4 } from "./ipv4.js";
import type { NetworkContext } from "./network-context.js";
import { NetworkError } from "./network-error.js";
import {
  type AttachmentKind,
  type SandboxNetworkView,
  type SandboxState,
  liveResolved,
  sandboxElements,
  sandboxView,
  stateFromAddress,
} from "./network-state.js";

/** A validated attach request. */
export interface AttachRequest {
  sandboxId: string;
  userId: string;
  name: string;
  kind: AttachmentKind;
  /** Undefined when the request has none: a re-attach keeps the current one, a new one allows all. */
  policy: EgressPolicy | undefined;
  /** The address to keep (a restore), located in the pool; undefined for any. */
  requested: { address: string; index: number; host: number } | undefined;
}

export interface Attacher {
  /** Attaches under the sandbox's lock (the caller holds it). */
  attachLocked(request: AttachRequest): Promise<SandboxNetworkView>;
}

function notInSubnet(ctx: NetworkContext, address: string, subnetIndex: number): NetworkError {
  return new NetworkError(
    "failed-precondition",
    `requested address ${address} is not in the user's subnet ${formatIpv4(ctx.plan.subnet(subnetIndex).base)}/${SUBNET_PREFIX}`,
  );
}

export function createAttacher(ctx: NetworkContext): Attacher {
  const { plan, addressing, nft, logger, sandboxes, users, devices } = ctx;
  /** "<subnet index>:<host>" of addresses being given right now (see predictHost). */
  const pendingHosts = new Set<string>();

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

  /** Re-attach (before a start or restore): put address and route back, update name/policy. */
  async function reattach(existing: SandboxState, request: AttachRequest): Promise<SandboxNetworkView> {
    const { sandboxId, userId, kind, policy } = request;
    const u = users.get(userId);
    if (u === undefined) throw new NetworkError("internal", `user network of ${userId} is missing`);
    if (kind === "netns") {
      try {
        await devices.configure(sandboxId, existing.address, u);
      } catch (e) {
        logger.info("netns needs re-creating", { sandbox_id: sandboxId, error: (e as Error).message });
        await devices.remove(sandboxId);
        await devices.create(sandboxId, kind, u, existing.address);
      }
    }
    // No policy in the request keeps the current one (set at creation or by SetEgressPolicy).
    if (
      policy !== undefined &&
      JSON.stringify(describePolicy(existing.policy)) !== JSON.stringify(describePolicy(policy))
    ) {
      await nft.apply(
        nftScripts.replacePolicy(existing.address, existing.policy, policy, liveResolved(existing)),
      );
      existing.policy = policy;
      existing.resolved.clear();
    }
    existing.name = request.name;
    ctx.saveRecords();
    return sandboxView(plan, existing);
  }

  /**
   * A sandbox without devices: reserve its address, join (or bring up) its user's network,
   * create its devices and firewall elements. Every step that succeeded is undone, last
   * first, if a later one fails.
   */
  async function attachNew(
    request: AttachRequest,
    existing: SandboxState | undefined,
  ): Promise<SandboxNetworkView> {
    const { sandboxId, userId, kind, requested } = request;
    const policy = request.policy ?? ALLOW_ALL;
    // A user whose bridge is up already: make the links while the store reserves the
    // address (they need no address), so the store round trip is off the critical path.
    const known = await users.joinIfUp(userId, sandboxId);
    if (known !== undefined && requested !== undefined && requested.index !== known.subnetIndex) {
      await users.leave(userId, sandboxId);
      throw notInSubnet(ctx, requested.address, known.subnetIndex);
    }
    const undo = createUndoStack();
    // An address the store held before this attach stays; a new one goes back to the pool.
    if (existing === undefined)
      undo.push("address", () => addressing.release(sandboxId).then(() => undefined));
    if (known !== undefined) undo.push("user network", () => users.leave(userId, sandboxId));

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
    if (known !== undefined) undo.push("devices", () => devices.remove(sandboxId));
    const early =
      known === undefined
        ? undefined
        : timed(
            "early_done_ms",
            (async () => {
              if (kind === "tap") {
                await devices.create(sandboxId, kind, known, "");
                return undefined;
              }
              if (predicted === undefined) return undefined; // full (says our view): the store decides
              const address = formatIpv4(plan.address(known.subnetIndex, predicted));
              await devices.create(sandboxId, kind, known, address);
              return address;
            })(),
          );
    early?.catch(() => undefined); // awaited below; the undo stack handles its failure
    try {
      const reserve = (host: number) => ctx.noteStore(addressing.reserve(userId, sandboxId, host));
      let reserved: ReservedAddress;
      try {
        reserved = await timed("reserved_ms", reserve(requested?.host ?? predicted ?? 0));
      } catch (e) {
        const guessTaken = requested === undefined && predicted !== undefined;
        if (!guessTaken || ConnectError.from(e).code !== Code.AlreadyExists) throw e;
        reserved = await reserve(0); // someone else holds the guess: let the store choose
      }
      const state: SandboxState = {
        ...stateFromAddress(plan, reserved, undefined),
        name: request.name,
        kind,
        policy,
        devices: true,
      };
      undo.push("record", () => {
        if (existing !== undefined) sandboxes.set(sandboxId, existing);
        else sandboxes.delete(sandboxId);
        ctx.saveRecords();
      });
      if (requested !== undefined && reserved.subnetIndex !== requested.index) {
        throw notInSubnet(ctx, requested.address, reserved.subnetIndex);
      }
      if (known !== undefined && known.subnetIndex !== reserved.subnetIndex) {
        throw new NetworkError(
          "internal",
          `store gave user ${userId} subnet ${reserved.subnetIndex}, but its bridge is ${known.bridge}`,
        );
      }
      sandboxes.set(sandboxId, state);
      ctx.saveRecords(); // before the sandbox is usable, so a crash leaves something to reconcile
      crashPoint("network.attach.recorded");
      let u = known;
      if (u === undefined) {
        u = await users.join(userId, reserved.subnetIndex, sandboxId);
        undo.push("user network", () => users.leave(userId, sandboxId));
        undo.push("devices", () => devices.remove(sandboxId));
      }
      const user = u;
      const restrictive = state.policy.mode !== "allow-all";
      if (restrictive) {
        undo.push("firewall elements", () => nft.apply(nftScripts.removeSandbox(sandboxElements(state), [])));
      }
      await Promise.all([
        (async () => {
          const configured = await early;
          if (kind === "tap") {
            if (early === undefined) await timed("created_ms", devices.create(sandboxId, kind, user, ""));
          } else if (configured === undefined) {
            await timed("created_ms", devices.create(sandboxId, kind, user, state.address));
          } else if (configured !== state.address) {
            // A wrong guess: the netns exists, with another address.
            await timed("configured_ms", devices.configure(sandboxId, state.address, user));
          }
        })(),
        restrictive
          ? timed("nft_done_ms", nft.apply(nftScripts.addSandbox(sandboxElements(state))))
          : undefined,
      ]);
      crashPoint("network.attach.devices");
      undo.commit();
      if (!restrictive) addAntiSpoofingLater(state);
      phases["total_ms"] = Math.round((performance.now() - started) * 10) / 10;
      logger.debug("attached", { sandbox_id: sandboxId, address: state.address, ...phases });
      return sandboxView(plan, state);
    } catch (e) {
      logger.warn("attach failed; rolling back", { sandbox_id: sandboxId, error: e });
      await early?.catch(() => undefined);
      for (const failure of await undo.rollback()) {
        logger.error("rollback step failed", {
          sandbox_id: sandboxId,
          step: failure.what,
          error: failure.error,
        });
      }
      throw e;
    } finally {
      if (pendingKey !== undefined) pendingHosts.delete(pendingKey);
    }
  }

  return {
    async attachLocked(request) {
      const { sandboxId, userId, kind, requested } = request;
      const existing = sandboxes.get(sandboxId);
      if (existing !== undefined && existing.userId !== userId) {
        throw new NetworkError("failed-precondition", `sandbox ${sandboxId} is attached for another user`);
      }
      if (existing?.devices && existing.kind !== kind) {
        throw new NetworkError(
          "failed-precondition",
          `sandbox ${sandboxId} is attached as ${existing.kind}, not ${kind}`,
        );
      }
      if (
        existing !== undefined &&
        requested !== undefined &&
        (existing.subnetIndex !== requested.index || existing.host !== requested.host)
      ) {
        throw new NetworkError(
          "failed-precondition",
          `sandbox ${sandboxId} already has address ${existing.address}, not ${requested.address}`,
        );
      }
      return existing?.devices ? reattach(existing, request) : attachNew(request, existing);
    },
  };
}
