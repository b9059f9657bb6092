import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { runCommand } from "./command.js";
import type { NetworkAttachRequest, NetworkAttachment, SandboxNetwork } from "./sandbox-network.js";

/**
 * A self-contained SandboxNetwork for tests and development without the network service
 * (platform.md §B3): one bridge in a "host" namespace, and per sandbox a netns
 * `<prefix>-<id>` holding `eth0`, the peer of veth `<prefix><id[0..12]>` on the bridge.
 * Addresses come from one /24 and are remembered in `stateFile`, so a restarted vmm keeps them.
 * It never touches the root namespace: the bridge lives in `hostNetns`.
 */
export interface LocalNetnsNetworkOptions {
  /** Name of the stand-in host netns (created by `setup`), e.g. "bt-h1a2b". */
  hostNetns: string;
  /** Bridge name inside hostNetns, e.g. "btbr1a2b". */
  bridge: string;
  /** First three octets of the /24, e.g. "10.251.7". */
  subnet: string;
  /** Prefix of sandbox netns and host veth names, e.g. "bt". */
  prefix: string;
  stateFile: string;
  /**
   * The host netns belongs to the caller (it runs inside it): teardown removes the bridge but
   * leaves the namespace. Default false: `setup` creates it if absent and teardown removes it.
   */
  keepHostNetns?: boolean;
}

export interface LocalNetnsNetwork extends SandboxNetwork {
  readonly hostNetnsPath: string;
  /** Creates the host netns and the bridge (idempotent). */
  setup(): Promise<void>;
  /** Removes every sandbox netns it made, the bridge and (unless kept) the host netns. */
  teardown(): Promise<void>;
  netnsName(sandboxId: string): string;
  vethName(sandboxId: string): string;
}

async function ip(args: string[], input?: string): Promise<void> {
  await runCommand("ip", args, input === undefined ? {} : { input });
}

async function ipQuiet(args: string[]): Promise<void> {
  try {
    await ip(args);
  } catch {
    // already gone
  }
}

export function createLocalNetnsNetwork(options: LocalNetnsNetworkOptions): LocalNetnsNetwork {
  const { hostNetns, bridge, subnet, prefix, stateFile } = options;
  const gateway = `${subnet}.1`;
  const netnsName = (id: string) => `${prefix}-${id}`;
  const vethName = (id: string) => `${prefix}${id.slice(0, 12)}`;

  const load = (): Record<string, string> => {
    try {
      return JSON.parse(readFileSync(stateFile, "utf8")) as Record<string, string>;
    } catch {
      return {};
    }
  };
  const save = (m: Record<string, string>) => {
    writeFileSync(`${stateFile}.tmp`, JSON.stringify(m));
    renameSync(`${stateFile}.tmp`, stateFile);
  };
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = chain.then(fn, fn);
    chain = p.catch(() => undefined);
    return p;
  };

  const allocate = (id: string, requested: string | undefined): string => {
    const m = load();
    const existing = m[id];
    if (existing) return existing;
    const used = new Set(Object.values(m));
    let address: string | undefined;
    if (requested && !used.has(requested)) address = requested;
    for (let n = 2; !address && n < 255; n++) if (!used.has(`${subnet}.${n}`)) address = `${subnet}.${n}`;
    if (!address) throw new Error(`subnet ${subnet}.0/24 is full`);
    m[id] = address;
    save(m);
    return address;
  };

  return {
    hostNetnsPath: `/run/netns/${hostNetns}`,
    netnsName,
    vethName,
    async setup() {
      if (!existsSync(`/run/netns/${hostNetns}`)) await ip(["netns", "add", hostNetns]);
      await ip(["-n", hostNetns, "link", "set", "lo", "up"]);
      // A fixed bridge MAC, as the network service gives its bridges: left to itself a Linux
      // bridge takes the lowest MAC of its ports, so it changed whenever a sandbox's veth came
      // or went, and the sandboxes' cached gateway MAC went stale (their replies were lost for
      // ~51 s, until the entry expired).
      const bridgeMac = `02:42:${gateway
        .split(".")
        .map((o) => Number(o).toString(16).padStart(2, "0"))
        .join(":")}`;
      try {
        await ip(["-n", hostNetns, "link", "add", bridge, "address", bridgeMac, "type", "bridge"]);
      } catch {
        await ip(["-n", hostNetns, "link", "set", bridge, "address", bridgeMac]);
      }
      await ip(["-n", hostNetns, "addr", "replace", `${gateway}/24`, "dev", bridge]);
      await ip(["-n", hostNetns, "link", "set", bridge, "up"]);
    },
    async teardown() {
      for (const id of Object.keys(load())) {
        await ipQuiet(["-n", hostNetns, "link", "del", vethName(id)]);
        await ipQuiet(["netns", "del", netnsName(id)]);
      }
      if (options.keepHostNetns === true) await ipQuiet(["-n", hostNetns, "link", "del", bridge]);
      else await ipQuiet(["netns", "del", hostNetns]);
      save({});
    },
    attach(request: NetworkAttachRequest): Promise<NetworkAttachment> {
      return serial(async () => {
        const id = request.sandboxId;
        const address = allocate(id, request.requestedAddress);
        const ns = netnsName(id);
        const veth = vethName(id);
        try {
          if (!existsSync(`/run/netns/${ns}`)) await ip(["netns", "add", ns]);
          try {
            await ip(["-n", hostNetns, "link", "show", veth]);
          } catch {
            await ip([
              "-n",
              hostNetns,
              "link",
              "add",
              veth,
              "type",
              "veth",
              "peer",
              "name",
              "eth0",
              "netns",
              ns,
            ]);
            await ip(["-n", hostNetns, "link", "set", veth, "master", bridge, "up"]);
          }
          // A MAC derived from the address, as the network service gives (not veth's random
          // one): a sandbox that reuses a destroyed one's address is reached at once, without
          // waiting for the host's neighbour entry of the old MAC to expire.
          const mac = `02:42:${address
            .split(".")
            .map((o) => Number(o).toString(16).padStart(2, "0"))
            .join(":")}`;
          await ip(["-n", ns, "link", "set", "eth0", "address", mac]);
          // runsc moves the address into its own stack: put it back before every start/restore.
          await ip(
            ["-n", ns, "-b", "-"],
            [
              "link set lo up",
              `addr replace ${address}/24 dev eth0`,
              "link set eth0 up",
              `route replace default via ${gateway}`,
            ].join("\n"),
          );
        } catch (e) {
          await ipQuiet(["-n", hostNetns, "link", "del", veth]);
          await ipQuiet(["netns", "del", ns]);
          const m = load();
          delete m[id];
          save(m);
          throw e;
        }
        return { netnsPath: `/run/netns/${ns}`, address, prefixLength: 24, gateway, dnsServer: gateway };
      });
    },
    detach(sandboxId: string): Promise<void> {
      return serial(async () => {
        await ipQuiet(["-n", hostNetns, "link", "del", vethName(sandboxId)]);
        await ipQuiet(["netns", "del", netnsName(sandboxId)]);
        const m = load();
        delete m[sandboxId];
        save(m);
      });
    },
    // This test network runs no resolver and keeps no names (its state is id -> address), so
    // there is nothing to rename: a no-op.
    async rename() {},
    async health() {
      return existsSync(`/run/netns/${hostNetns}`)
        ? { ready: true, detail: `local netns ${hostNetns}` }
        : { ready: false, detail: `host netns ${hostNetns} missing` };
    },
  };
}
