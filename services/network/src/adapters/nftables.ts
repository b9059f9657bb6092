import { macForAddress } from "../domain/address-plan.js";
import type { EgressPolicy } from "../domain/egress-policy.js";
import { ALWAYS_DENIED_RANGES, type Cidr, PRIVATE_RANGES, formatCidr, parseIpv4 } from "../domain/ipv4.js";
import { runChecked } from "./command.js";

/**
 * The product's own nftables tables: `table inet bhatti` (filter + NAT) and
 * `table bridge bhatti` (anti-spoofing on sandbox ports). Every rule matches the product's
 * bridges or ports, chains have policy accept, and nothing else is ever touched. The rule
 * set is fixed; sandboxes and users are set elements, so attaching a sandbox never adds a
 * rule and the rule count does not grow with the number of sandboxes.
 */
export let NFT_TABLE = "bhatti";

/** Applies the configured table name (network_nft_table); call before the rule set is loaded. */
export function setNftTableName(name: string): void {
  NFT_TABLE = name;
}

export interface UserElements {
  bridge: string;
  /** Dotted gateway address on the bridge. */
  gateway: string;
}

export interface SandboxElements {
  /** Host-side bridge port: the veth or the TAP. */
  port: string;
  address: string;
  policy: EgressPolicy;
}

/**
 * Connections one sandbox may have tracked at once (the host's nf_conntrack table is shared:
 * 262144 by default on this class of host), and new connections per second it may open.
 * Beyond them its new packets are dropped, so one sandbox cannot fill the table for all.
 */
export const CONNTRACK_PER_SANDBOX = 4096;
export const NEW_FLOWS_PER_SECOND = 500;
export const NEW_FLOWS_BURST = 1000;

const q = (name: string) => JSON.stringify(name);
const ranges = (cidrs: readonly Cidr[]) => cidrs.map(formatCidr).join(", ");

/**
 * The whole rule set; loaded atomically (an existing product table is replaced).
 *
 * `from_port`: source MAC, IP and ARP sender must all be the port's own. The bridge's
 * prerouting hook runs before it learns a frame's source MAC, so a dropped frame never
 * enters the FDB: a port can only ever teach the bridge its own MAC (no FDB flooding or
 * poisoning). `sandbox_fairness`: per-sandbox conntrack and new-flow limits.
 */
export function baseRuleset(poolCidr: string): string {
  return `table inet ${NFT_TABLE} {
  set bridges { type ifname; }
  set bridge_gateways { type ifname . ipv4_addr; }
  set gateways { type ipv4_addr; }
  set same_bridge { type ifname . ifname; }
  set always_denied { type ipv4_addr; flags interval; elements = { ${ranges(ALWAYS_DENIED_RANGES)} } }
  set private_ranges { type ipv4_addr; flags interval; elements = { ${ranges(PRIVATE_RANGES)} } }
  set deny_all { type ipv4_addr; }
  set allow_list { type ipv4_addr; }
  set allowed_cidrs { type ipv4_addr . ipv4_addr; flags interval; }
  set allowed_names { type ipv4_addr . ipv4_addr; flags timeout; }
  set conntrack_per_source { type ipv4_addr; size 65535; flags dynamic; }
  set new_flows_per_source { type ipv4_addr; size 65535; flags dynamic,timeout; timeout 60s; }

  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname @bridges jump from_sandbox
    oifname @bridges jump to_sandbox
  }
  chain sandbox_fairness {
    ct state new add @conntrack_per_source { ip saddr ct count over ${CONNTRACK_PER_SANDBOX} } drop
    ct state new update @new_flows_per_source { ip saddr limit rate over ${NEW_FLOWS_PER_SECOND}/second burst ${NEW_FLOWS_BURST} packets } drop
  }
  chain from_sandbox {
    jump sandbox_fairness
    iifname . oifname @same_bridge accept
    oifname @bridges drop
    meta nfproto ipv6 drop
    ip saddr @deny_all drop
    ip daddr @always_denied drop
    ct state established,related accept
    ip saddr . ip daddr @allowed_cidrs accept
    ip saddr . ip daddr @allowed_names accept
    ip saddr @allow_list drop
    ip daddr @private_ranges drop
    accept
  }
  chain to_sandbox {
    ct state established,related accept
    drop
  }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname @bridges jump sandbox_to_host
    ip daddr @gateways iifname != "lo" drop
  }
  chain sandbox_to_host {
    jump sandbox_fairness
    ct state established,related accept
    iifname . ip daddr @bridge_gateways udp dport 53 accept
    iifname . ip daddr @bridge_gateways tcp dport 53 accept
    iifname . ip daddr @bridge_gateways icmp type echo-request accept
    drop
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr ${poolCidr} oifname != @bridges masquerade
  }
}
table bridge ${NFT_TABLE} {
  set ports { type ifname; }
  set port_addresses { type ifname . ether_addr . ipv4_addr; }
  set port_macs { type ifname . ether_addr; }
  chain prerouting {
    type filter hook prerouting priority filter; policy accept;
    iifname @ports jump from_port
  }
  chain from_port {
    iifname . ether saddr . ip saddr @port_addresses return
    iifname . ether saddr . arp saddr ip @port_addresses iifname . arp saddr ether . arp saddr ip @port_addresses return
    iifname . ether saddr @port_macs iifname . arp saddr ether @port_macs arp saddr ip 0.0.0.0 return
    drop
  }
}`;
}

type Op = "add" | "delete";

function element(op: Op, family: "inet" | "bridge", set: string, value: string): string {
  return `${op} element ${family} ${NFT_TABLE} ${set} { ${value} }`;
}

/**
 * Idempotent removal: adding an element that exists is a no-op, so "add then delete" in one
 * transaction removes it whether or not it was there (nft 1.0.6 has no `destroy`).
 */
function remove(family: "inet" | "bridge", set: string, value: string): string[] {
  return [element("add", family, set, value), element("delete", family, set, value)];
}

function userLines(op: Op, u: UserElements): string[] {
  const items: ["inet", string, string][] = [
    ["inet", "bridges", q(u.bridge)],
    ["inet", "bridge_gateways", `${q(u.bridge)} . ${u.gateway}`],
    ["inet", "same_bridge", `${q(u.bridge)} . ${q(u.bridge)}`],
    ["inet", "gateways", u.gateway],
  ];
  return items.flatMap(([f, s, v]) => (op === "add" ? [element("add", f, s, v)] : remove(f, s, v)));
}

function policyItems(address: string, policy: EgressPolicy): ["inet", string, string][] {
  if (policy.mode === "deny-all") return [["inet", "deny_all", address]];
  if (policy.mode === "allow-all") return [];
  return [
    ["inet", "allow_list", address],
    ...policy.cidrs.map((c): ["inet", string, string] => [
      "inet",
      "allowed_cidrs",
      `${address} . ${formatCidr(c)}`,
    ]),
  ];
}

function sandboxItems(s: SandboxElements): ["inet" | "bridge", string, string][] {
  // The sandbox's MAC is derived from its address (address-plan), on every kind of port.
  const mac = macForAddress(parseIpv4(s.address) ?? 0);
  return [
    ["bridge", "ports", q(s.port)],
    ["bridge", "port_addresses", `${q(s.port)} . ${mac} . ${s.address}`],
    ["bridge", "port_macs", `${q(s.port)} . ${mac}`],
    ...policyItems(s.address, s.policy),
  ];
}

export const nftScripts = {
  /** Atomically replaces the product tables and fills them. */
  load(poolCidr: string, users: readonly UserElements[], sandboxes: readonly SandboxElements[]): string {
    return [
      // Declaring then deleting makes the delete succeed on a first start too.
      `add table inet ${NFT_TABLE}`,
      `delete table inet ${NFT_TABLE}`,
      `add table bridge ${NFT_TABLE}`,
      `delete table bridge ${NFT_TABLE}`,
      baseRuleset(poolCidr),
      ...users.flatMap((u) => userLines("add", u)),
      ...sandboxes.flatMap((s) => sandboxItems(s).map(([f, set, v]) => element("add", f, set, v))),
    ].join("\n");
  },
  addUser: (u: UserElements): string => userLines("add", u).join("\n"),
  removeUser: (u: UserElements): string => userLines("delete", u).join("\n"),
  addSandbox: (s: SandboxElements): string =>
    sandboxItems(s)
      .map(([f, set, v]) => element("add", f, set, v))
      .join("\n"),
  /** Also forgets the addresses the resolver allowed for it (`resolved`). */
  removeSandbox: (s: SandboxElements, resolved: readonly string[]): string =>
    [
      ...sandboxItems(s).flatMap(([f, set, v]) => remove(f, set, v)),
      ...resolved.flatMap((ip) => remove("inet", "allowed_names", `${s.address} . ${ip}`)),
    ].join("\n"),
  replacePolicy: (
    address: string,
    from: EgressPolicy,
    to: EgressPolicy,
    resolved: readonly string[],
  ): string =>
    [
      ...policyItems(address, from).flatMap(([f, set, v]) => remove(f, set, v)),
      ...resolved.flatMap((ip) => remove("inet", "allowed_names", `${address} . ${ip}`)),
      ...policyItems(address, to).map(([f, set, v]) => element("add", f, set, v)),
    ].join("\n"),
  /** Allows (or re-arms the timeout of) resolved addresses for one sandbox. */
  allowResolved: (address: string, ips: readonly string[], timeoutSeconds: number): string =>
    ips
      .flatMap((ip) => [
        ...remove("inet", "allowed_names", `${address} . ${ip}`),
        element("add", "inet", "allowed_names", `${address} . ${ip} timeout ${timeoutSeconds}s`),
      ])
      .join("\n"),
};

export interface Nftables {
  apply(script: string): Promise<void>;
  /** Whether the product's inet table exists (for Health). */
  tablePresent(): Promise<boolean>;
  /** Rule and element counts of the product tables (benchmarks, Health). */
  counts(): Promise<{ rules: number; elements: number }>;
}

interface Pending {
  script: string;
  resolve(): void;
  reject(e: unknown): void;
}

export function createNftables(nftPath = "nft"): Nftables {
  const list = (family: string) => runChecked(nftPath, ["-j", "list", "table", family, NFT_TABLE]);
  const load = (script: string) => runChecked(nftPath, ["-f", "-"], `${script}\n`).then(() => undefined);
  // Scripts that arrive while one nft process runs are applied together by the next one, so
  // a burst of attaches costs a few processes, not one each. If a combined transaction
  // fails, each script is retried alone so only the faulty one fails.
  let queue: Pending[] = [];
  let running = false;
  const drain = async () => {
    running = true;
    while (queue.length > 0) {
      const batch = queue;
      queue = [];
      try {
        await load(batch.map((p) => p.script).join("\n"));
        for (const p of batch) p.resolve();
      } catch (e) {
        if (batch.length === 1) batch[0]?.reject(e);
        else {
          for (const p of batch) await load(p.script).then(p.resolve, p.reject);
        }
      }
    }
    running = false;
  };
  return {
    apply: (script) =>
      new Promise<void>((resolve, reject) => {
        queue.push({ script, resolve, reject });
        if (!running) void drain();
      }),
    tablePresent: () =>
      list("inet").then(
        () => true,
        () => false,
      ),
    async counts() {
      let rules = 0;
      let elements = 0;
      for (const family of ["inet", "bridge"]) {
        const doc = JSON.parse(await list(family)) as { nftables: Record<string, { elem?: unknown[] }>[] };
        for (const item of doc.nftables) {
          if ("rule" in item) rules++;
          const set = item["set"];
          if (set !== undefined) elements += set.elem?.length ?? 0;
        }
      }
      return { rules, elements };
    },
  };
}
