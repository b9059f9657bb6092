import { closeSync, mkdirSync, openSync, readdirSync } from "node:fs";
import { NETNS_DIR, SANDBOX_INTERFACE } from "../domain/device-names.js";
import { runChecked, runCommand } from "./command.js";

/** A user's bridge with its gateway address. */
export interface BridgeSpec {
  name: string;
  mac: string;
  /** "10.201.0.1/24" */
  gatewayCidr: string;
}

/** A sandbox's netns: eth0 (peer of `veth` on the bridge) with its MAC, address and route. */
export interface NetnsSpec {
  netns: string;
  veth: string;
  bridge: string;
  mac: string;
  /** "10.201.0.2/24" */
  addressCidr: string;
  gateway: string;
}

export interface TapSpec {
  tap: string;
  bridge: string;
}

/** What exists in the service's netns (links by name, with ifindex) and in /run/netns. */
export interface KernelInventory {
  links: Map<string, number>;
  netns: Set<string>;
}

/** The service's own network namespace, as a path other processes can open. */
const ownNetns = () => `/proc/${process.pid}/ns/net`;

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
  /**
   * Run inside the new sandbox netns: the veth is created with its host end directly in the
   * service's netns (`netns <path>`), enslaved to the bridge there by ifindex (`if<n>`, as the
   * bridge's name means nothing inside the sandbox netns), and eth0 is configured, all in one
   * process.
   */
  netnsCreate: (s: NetnsSpec, bridgeIndex: number, hostNetns: string): string =>
    [
      `link add ${s.veth} netns ${hostNetns} master if${bridgeIndex} up type veth peer name ${SANDBOX_INTERFACE}`,
      ipScripts.netnsConfigure(s),
    ].join("\n"),
  tapCreate: (t: TapSpec): string =>
    [`tuntap add dev ${t.tap} mode tap`, `link set ${t.tap} master ${t.bridge} up`].join("\n"),
};

export interface IpLink {
  bridgeUp(bridge: BridgeSpec): Promise<void>;
  /** The ifindex of a link in the service's netns. */
  linkIndex(name: string): Promise<number>;
  /**
   * Creates the netns `/run/netns/<netns>`, the veth pair on the bridge and configures eth0,
   * in one process (`unshare --net=<file>` makes and pins the new netns, like `ip netns add`).
   */
  netnsCreate(spec: NetnsSpec, bridgeIndex: number): Promise<void>;
  /** Re-applies MAC, address, link state and route inside an existing netns. */
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

export function createIpLink(ipPath = "ip", unsharePath = "unshare"): IpLink {
  const batch = (script: string, netns?: string) =>
    runChecked(ipPath, netns === undefined ? ["-b", "-"] : ["-n", netns, "-b", "-"], `${script}\n`);
  const listLinks = async (args: string[]) =>
    JSON.parse(await runChecked(ipPath, ["-j", "link", "show", ...args])) as {
      ifname: string;
      ifindex: number;
    }[];
  return {
    bridgeUp: (b) => batch(ipScripts.bridgeUp(b)).then(() => undefined),
    async linkIndex(name) {
      const [link] = await listLinks(["dev", name]);
      if (link === undefined) throw new Error(`link ${name} not found`);
      return link.ifindex;
    },
    async netnsCreate(s, bridgeIndex) {
      mkdirSync(NETNS_DIR, { recursive: true });
      const path = `${NETNS_DIR}/${s.netns}`;
      closeSync(openSync(path, "wx", 0)); // the mount point; fails if the netns exists
      await runChecked(
        unsharePath,
        [`--net=${path}`, ipPath, "-b", "-"],
        `${ipScripts.netnsCreate(s, bridgeIndex, ownNetns())}\n`,
      );
    },
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
      const links = new Map((await listLinks([])).map((l) => [l.ifname, l.ifindex]));
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
