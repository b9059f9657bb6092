import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  AttachmentKind,
  type EgressPolicy as EgressPolicyMessage,
  EgressMode,
  type NetworkService,
  type SandboxNetworkSchema,
} from "@bhatti/proto";
import type { EgressPolicyInput } from "../domain/egress-policy.js";
import type {
  AttachmentKind as Kind,
  NetworkManager,
  SandboxNetworkView,
} from "../domain/network-manager.js";

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

/** NetworkService RPCs (Health is added by main.ts). */
export function createNetworkHandlers(
  manager: NetworkManager,
): Omit<ServiceImpl<typeof NetworkService>, "health"> {
  return {
    async attachSandbox(req) {
      const network = await manager.attach({
        sandboxId: req.sandboxId,
        userId: req.userId,
        name: req.sandboxName,
        kind: kindFromMessage(req.kind),
        egress: policyFromMessage(req.egress),
        requestedAddress: req.requestedAddress,
      });
      return { network: networkToMessage(network) };
    },
    async detachSandbox(req) {
      return { detached: await manager.detach(req.sandboxId) };
    },
    async getSandboxAddress(req) {
      return { network: networkToMessage(await manager.get(req.sandboxId)) };
    },
    async setEgressPolicy(req) {
      return {
        egress: policyToMessage(await manager.setEgressPolicy(req.sandboxId, policyFromMessage(req.egress))),
      };
    },
  };
}
