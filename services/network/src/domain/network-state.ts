import type { AttachmentRecord } from "../adapters/attachment-file.js";
import type { SandboxElements, UserElements } from "../adapters/nftables.js";
import type { ReservedAddress } from "../adapters/store-addressing.js";
import type { UserResolver } from "../dns/user-resolver.js";
import { type AddressPlan, SUBNET_PREFIX, macForAddress } from "./address-plan.js";
import { SANDBOX_INTERFACE, bridgeName, netnsPath, tapName, vethName } from "./device-names.js";
import {
  type EgressPolicy,
  type EgressPolicyInput,
  describePolicy,
  validateEgressPolicy,
} from "./egress-policy.js";
import { formatIpv4, parseIpv4 } from "./ipv4.js";

// The service's in-memory model (the sandboxes with an address, the users' networks) and the
// views of it that the firewall, the attachments file and the API need.

export type AttachmentKind = "netns" | "tap";

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

export interface SandboxState {
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

export interface UserState {
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

export const userElements = (u: UserState): UserElements => ({ bridge: u.bridge, gateway: u.gateway });

/** The sandbox's port on its user's bridge. */
export const portOf = (s: SandboxState): string =>
  s.kind === "tap" ? tapName(s.sandboxId) : vethName(s.sandboxId);

export const sandboxElements = (s: SandboxState): SandboxElements => ({
  port: portOf(s),
  address: s.address,
  policy: s.policy,
});

export const recordOf = (s: SandboxState): AttachmentRecord => ({
  sandboxId: s.sandboxId,
  userId: s.userId,
  name: s.name,
  kind: s.kind ?? "netns",
  egress: describePolicy(s.policy),
});

/** Addresses the resolver opened for the sandbox (removed with its policy). */
export const liveResolved = (s: SandboxState): string[] => [...s.resolved.keys()];

export function sandboxView(plan: AddressPlan, s: SandboxState): SandboxNetworkView {
  const gateway = formatIpv4(plan.subnet(s.subnetIndex).gateway);
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

/** A sandbox with the address the store holds; with devices only if the record is its user's. */
export function stateFromAddress(
  plan: AddressPlan,
  a: ReservedAddress,
  rec: AttachmentRecord | undefined,
): SandboxState {
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
