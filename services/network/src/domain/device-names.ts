import { isSandboxId } from "@bhatti/proto";

/**
 * Names of everything the service creates. Interface names are at most 15 characters
 * (IFNAMSIZ - 1) and carry a product prefix so inventory and cleanup never touch anything else.
 */
export const NETNS_DIR = "/run/netns";
// Product defaults; set once at startup from the config (network_link_prefix,
// network_netns_prefix) so that tests beside a real server use names of their own.
export let NETNS_PREFIX = "bhatti-";
export let VETH_PREFIX = "bhv";
export let TAP_PREFIX = "bhtap";
export let BRIDGE_PREFIX = "bhbr";

/** Applies the configured prefixes; call before anything is named (network main). */
export function setDeviceNamePrefixes(linkPrefix: string, netnsPrefix: string): void {
  NETNS_PREFIX = netnsPrefix;
  VETH_PREFIX = `${linkPrefix}v`;
  TAP_PREFIX = `${linkPrefix}tap`;
  BRIDGE_PREFIX = `${linkPrefix}br`;
}
/** The interface inside a sandbox's netns. */
export const SANDBOX_INTERFACE = "eth0";

export const netnsName = (sandboxId: string): string => `${NETNS_PREFIX}${sandboxId}`;
export const netnsPath = (sandboxId: string): string => `${NETNS_DIR}/${netnsName(sandboxId)}`;
export const vethName = (sandboxId: string): string => `${VETH_PREFIX}${sandboxId.slice(0, 10)}`;
export const tapName = (sandboxId: string): string => `${TAP_PREFIX}${sandboxId.slice(0, 10)}`;
export const bridgeName = (subnetIndex: number): string => `${BRIDGE_PREFIX}${subnetIndex}`;

/** The sandbox id of a product netns name, if it is one. */
export function sandboxIdOfNetns(name: string): string | undefined {
  if (!name.startsWith(NETNS_PREFIX)) return undefined;
  const id = name.slice(NETNS_PREFIX.length);
  return isSandboxId(id) ? id : undefined;
}

/** Which product device an interface name is, if any. */
export function classifyInterface(
  name: string,
): { kind: "veth" | "tap"; idPrefix: string } | { kind: "bridge"; index: number } | undefined {
  if (name.startsWith(TAP_PREFIX) && /^[0-9a-f]{10}$/.test(name.slice(TAP_PREFIX.length))) {
    return { kind: "tap", idPrefix: name.slice(TAP_PREFIX.length) };
  }
  if (name.startsWith(VETH_PREFIX) && /^[0-9a-f]{10}$/.test(name.slice(VETH_PREFIX.length))) {
    return { kind: "veth", idPrefix: name.slice(VETH_PREFIX.length) };
  }
  if (name.startsWith(BRIDGE_PREFIX) && /^[1-9]\d{0,6}$/.test(name.slice(BRIDGE_PREFIX.length))) {
    return { kind: "bridge", index: Number(name.slice(BRIDGE_PREFIX.length)) };
  }
  return undefined;
}
