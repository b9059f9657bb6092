import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  AttachmentKind,
  type EgressPolicy as EgressPolicyMessage,
  EgressMode,
  NAME_RULE,
  type NetworkService,
  type SandboxNetworkSchema,
  isSandboxId,
} from "@bhatti/proto";
import { processHealth } from "@bhatti/runtime";
import type { Nftables } from "../adapters/nftables.js";
import type { Upstream, UpstreamClient } from "../dns/dns-forwarder.js";
import type { AddressPlan } from "../domain/address-plan.js";
import type { AttachRequest } from "../domain/attach.js";
import { type EgressPolicy, type EgressPolicyInput, validateEgressPolicy } from "../domain/egress-policy.js";
import { parseIpv4 } from "../domain/ipv4.js";
import type {
  AttachmentKind as Kind,
  NetworkManager,
  SandboxNetworkView,
} from "../domain/network-manager.js";

/** How often Health re-checks that the product's nft table is still there. */
const NFT_CHECK_INTERVAL_MS = 5000;

// Looser than the store's id rule (ID_RULE): the network keys its state by the user id and needs
// only a token that is safe in names; its own tests use short ids.
const userIdPattern = /^[A-Za-z0-9_-]{1,64}$/;
const allowAllInput: EgressPolicyInput = { mode: "allow-all", allowCidrs: [], allowHosts: [] };

const modeToText: Record<EgressMode, EgressPolicyInput["mode"]> = {
  [EgressMode.UNSPECIFIED]: "allow-all",
  [EgressMode.ALLOW_ALL]: "allow-all",
  [EgressMode.DENY_ALL]: "deny-all",
  [EgressMode.ALLOW_LIST]: "allow-list",
};
const textToMode: Record<EgressPolicyInput["mode"], EgressMode> = {
  "allow-all": EgressMode.ALLOW_ALL,
  "deny-all": EgressMode.DENY_ALL,
  "allow-list": EgressMode.ALLOW_LIST,
};

export function policyFromMessage(m: EgressPolicyMessage | undefined): EgressPolicyInput | undefined {
  if (m === undefined) return undefined;
  // An unknown future mode fails closed.
  return { mode: modeToText[m.mode] ?? "deny-all", allowCidrs: m.allowCidrs, allowHosts: m.allowHosts };
}

function policyToMessage(p: EgressPolicyInput) {
  return { mode: textToMode[p.mode], allowCidrs: [...p.allowCidrs], allowHosts: [...p.allowHosts] };
}

function kindFromMessage(k: AttachmentKind): Kind | undefined {
  if (k === AttachmentKind.NETNS) return "netns";
  if (k === AttachmentKind.TAP) return "tap";
  return undefined;
}

function networkToMessage(v: SandboxNetworkView): MessageInitShape<typeof SandboxNetworkSchema> {
  return {
    ...v,
    kind:
      v.kind === "netns"
        ? AttachmentKind.NETNS
        : v.kind === "tap"
          ? AttachmentKind.TAP
          : AttachmentKind.UNSPECIFIED,
    egress: policyToMessage(v.egress),
  };
}

// --- request validation (a bad policy throws InvalidPolicyError, mapped by the interceptor) ---

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

function sandboxIdOf(id: string): string {
  if (!isSandboxId(id)) throw invalid(`sandbox_id "${id}" is not 16 lowercase hex chars`);
  return id;
}

/** No policy in the message: undefined (the domain decides what that means). */
function policyOf(m: EgressPolicyMessage | undefined): EgressPolicy | undefined {
  const input = policyFromMessage(m);
  return input === undefined ? undefined : validateEgressPolicy(input);
}

function requestedAddressOf(plan: AddressPlan, address: string): AttachRequest["requested"] {
  if (address === "") return undefined;
  const n = parseIpv4(address);
  const located = n === undefined ? undefined : plan.locate(n);
  if (located === undefined) {
    throw invalid(`requested_address "${address}" is not a usable address of pool ${plan.poolText}`);
  }
  return { address, ...located };
}

export interface NetworkHandlersDeps {
  manager: NetworkManager;
  plan: AddressPlan;
  /** For Health: the product's nft table (its name, and whether it is there). */
  nft: Pick<Nftables, "tablePresent">;
  nftTable: string;
  /** For Health: the DNS forwarder and the upstreams it uses now. */
  upstream: Pick<UpstreamClient, "inFlight">;
  upstreams(): readonly Upstream[];
}

/** NetworkService, Health included. Domain errors become Connect codes in networkErrorInterceptor. */
export function createNetworkHandlers(deps: NetworkHandlersDeps): ServiceImpl<typeof NetworkService> {
  const { manager, plan } = deps;
  let nftPresent = false;
  let nftCheckedAt = 0;
  const refreshNft = () => {
    nftCheckedAt = Date.now();
    void deps.nft.tablePresent().then((present) => {
      nftPresent = present;
    });
  };
  void manager.ready.then(refreshNft, () => undefined);

  return {
    health() {
      if (Date.now() - nftCheckedAt > NFT_CHECK_INTERVAL_MS) refreshNft();
      const h = manager.health();
      return {
        health: processHealth(
          "network",
          [
            {
              name: "nftables",
              ready: h.ready && nftPresent,
              detail: nftPresent ? `table inet ${deps.nftTable}` : "table missing",
            },
            {
              name: "store",
              ready: h.ready && h.storeReachable,
              detail: h.reconcileError ?? (h.ready ? "reconciled" : "reconciling"),
            },
          ],
          {
            pool: plan.poolText,
            users: String(h.users),
            sandboxes: String(h.sandboxes),
            resolvers: String(h.resolvers),
            resolver_errors: String(h.resolverErrors),
            dns_forwarding: String(deps.upstream.inFlight()),
            dns_upstreams: deps
              .upstreams()
              .map((u) => `${u.host}:${u.port}`)
              .join(","),
          },
        ),
      };
    },

    async attachSandbox(req) {
      const sandboxId = sandboxIdOf(req.sandboxId);
      if (!userIdPattern.test(req.userId)) throw invalid(`user_id "${req.userId}" is invalid`);
      if (!NAME_RULE.test(req.sandboxName)) throw invalid(`sandbox_name "${req.sandboxName}" is invalid`);
      const kind = kindFromMessage(req.kind);
      if (kind === undefined) throw invalid("kind must be NETNS or TAP");
      const network = await manager.attach({
        sandboxId,
        userId: req.userId,
        name: req.sandboxName,
        kind,
        policy: policyOf(req.egress),
        requested: requestedAddressOf(plan, req.requestedAddress),
      });
      return { network: networkToMessage(network) };
    },

    async detachSandbox(req) {
      return { detached: await manager.detach(sandboxIdOf(req.sandboxId)) };
    },

    async getSandboxAddress(req) {
      return { network: networkToMessage(await manager.get(sandboxIdOf(req.sandboxId))) };
    },

    async setEgressPolicy(req) {
      const sandboxId = sandboxIdOf(req.sandboxId);
      const policy = validateEgressPolicy(policyFromMessage(req.egress) ?? allowAllInput);
      return { egress: policyToMessage(await manager.setEgressPolicy(sandboxId, policy)) };
    },

    async renameSandbox(req) {
      const sandboxId = sandboxIdOf(req.sandboxId);
      if (!NAME_RULE.test(req.sandboxName)) throw invalid(`sandbox_name "${req.sandboxName}" is invalid`);
      return { network: networkToMessage(await manager.rename(sandboxId, req.sandboxName)) };
    },
  };
}
