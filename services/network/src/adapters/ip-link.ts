import { readdirSync } from "node:fs";
import { NETNS_DIR, SANDBOX_INTERFACE } from "../domain/device-names.js";
import { runChecked, runCommand } from "./command.js";

/** A user's bridge with its gateway address. */
export interface BridgeSpec {
  name: string;
  mac: string;
  /** "10.201.0.1/24" */
  gatewayCidr: string;
}

/** The devices of a sandbox netns: the netns and the veth pair on the bridge. */
export interface NetnsDevices {
  netns: string;
  veth: string;
  bridge: string;
}

/** A sandbox's netns side: eth0's MAC, address and default route. */
export interface NetnsSpec extends NetnsDevices {
  mac: string;
  /** "10.201.0.2/24" */
  addressCidr: string;
  gateway: string;
}

export interface TapSpec {
  tap: string;
  bridge: string;
}

/** What exists in the service's netns (links) and in /run/netns (namespaces). */
export interface KernelInventory {
  links: Set<string>;
  netns: Set<string>;
}

/**
 * The `ip` commands for each step, as batch scripts (`ip -b -`): one process per batch
 * instead of one per command. Pure text builders, so they can be checked without a kernel.
 */
export const ipScripts = {
  bridgeUp: (b: BridgeSpec): string =>
    [
      `link add ${b.name} address ${b.mac} type bridge`,
      `addr replace ${b.gatewayCidr} dev ${b.name}`,
      `link set ${b.name} up`,
    ].join("\n"),
  /** In the service's netns: the sandbox netns, and the veth pair with eth0 moved into it. */
  netnsCreate: (s: NetnsDevices): string =>
    [
      `netns add ${s.netns}`,
      `link add ${s.veth} master ${s.bridge} up type veth peer name ${SANDBOX_INTERFACE} netns ${s.netns}`,
    ].join("\n"),
  /** Inside the sandbox netns; idempotent (runsc removes the address on every start). */
  netnsConfigure: (s: NetnsSpec): string =>
    [
      "link set lo up",
      `link set ${SANDBOX_INTERFACE} address ${s.mac}`,
      `addr flush dev ${SANDBOX_INTERFACE}`,
      `addr replace ${s.addressCidr} dev ${SANDBOX_INTERFACE}`,
      `link set ${SANDBOX_INTERFACE} up`,
      `route replace default via ${s.gateway} dev ${SANDBOX_INTERFACE}`,
    ].join("\n"),
  tapCreate: (t: TapSpec): string =>
    [`tuntap add dev ${t.tap} mode tap`, `link set ${t.tap} master ${t.bridge} up`].join("\n"),
};

export interface IpLink {
  bridgeUp(bridge: BridgeSpec): Promise<void>;
  /** Creates the netns and the veth pair (eth0 inside, not configured yet). */
  netnsCreate(devices: NetnsDevices): Promise<void>;
  /** Re-applies address, link state and route inside an existing netns. */
  netnsConfigure(spec: NetnsSpec): Promise<void>;
  tapCreate(spec: TapSpec): Promise<void>;
  /**
   * Deletes links (host side; a veth takes its peer) and then namespaces, ignoring those
   * that do not exist. Returns the error text of anything else that failed.
   */
  remove(links: readonly string[], namespaces: readonly string[]): Promise<string | undefined>;
  inventory(): Promise<KernelInventory>;
}

const missing = /Cannot find device|No such file or directory|does not exist/;

export function createIpLink(ipPath = "ip"): IpLink {
  const batch = (script: string, netns?: string) =>
    runChecked(ipPath, netns === undefined ? ["-b", "-"] : ["-n", netns, "-b", "-"], `${script}\n`);
  return {
    bridgeUp: (b) => batch(ipScripts.bridgeUp(b)).then(() => undefined),
    netnsCreate: (s) => batch(ipScripts.netnsCreate(s)).then(() => undefined),
    netnsConfigure: (s) => batch(ipScripts.netnsConfigure(s), s.netns).then(() => undefined),
    tapCreate: (t) => batch(ipScripts.tapCreate(t)).then(() => undefined),
    async remove(links, namespaces) {
      const lines = [...links.map((l) => `link del ${l}`), ...namespaces.map((n) => `netns del ${n}`)];
      if (lines.length === 0) return undefined;
      const result = await runCommand(ipPath, ["-force", "-b", "-"], `${lines.join("\n")}\n`);
      if (result.exitCode === 0) return undefined;
      const unexpected = result.stderr
        .split("\n")
        .filter((l) => l.trim() !== "" && !missing.test(l) && !/^Command failed/.test(l));
      return unexpected.length > 0 ? unexpected.join("; ") : undefined;
    },
    async inventory() {
      const out = await runChecked(ipPath, ["-j", "link", "show"]);
      const links = new Set((JSON.parse(out) as { ifname: string }[]).map((l) => l.ifname));
      let netns: string[] = [];
      try {
        netns = readdirSync(NETNS_DIR);
      } catch {
        // no namespace was ever added on this machine
      }
      return { links, netns: new Set(netns) };
    },
  };
}
