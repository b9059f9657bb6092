import type { Logger } from "@bhatti/runtime";
import type { IpLink, NetnsSpec } from "../adapters/ip-link.js";
import { SUBNET_PREFIX, macForAddress } from "./address-plan.js";
import { netnsName, tapName, vethName } from "./device-names.js";
import { parseIpv4 } from "./ipv4.js";
import type { AttachmentKind, UserState } from "./network-state.js";

/** A sandbox's devices: its netns with eth0 and the veth pair, or its TAP, on the user's bridge. */
export interface SandboxDevices {
  /** Creates them; leftovers of a crash that block creation are cleared and creation retried once. */
  create(sandboxId: string, kind: AttachmentKind, user: UserState, address: string): Promise<void>;
  /** Puts the address and route of an existing netns back (before a start or restore). */
  configure(sandboxId: string, address: string, user: UserState): Promise<void>;
  remove(sandboxId: string): Promise<void>;
}

export function createSandboxDevices(ip: IpLink, logger: Logger): SandboxDevices {
  const netnsSpec = (sandboxId: string, address: string, u: UserState): NetnsSpec => ({
    netns: netnsName(sandboxId),
    veth: vethName(sandboxId),
    bridge: u.bridge,
    mac: macForAddress(parseIpv4(address) ?? 0),
    addressCidr: `${address}/${SUBNET_PREFIX}`,
    gateway: u.gateway,
  });

  async function remove(sandboxId: string): Promise<void> {
    const error = await ip.remove([vethName(sandboxId), tapName(sandboxId)], [netnsName(sandboxId)]);
    if (error !== undefined) throw new Error(`could not remove devices of ${sandboxId}: ${error}`);
  }

  return {
    async create(sandboxId, kind, u, address) {
      const make = () =>
        kind === "tap"
          ? ip.tapCreate({ tap: tapName(sandboxId), bridge: u.bridge })
          : ip.netnsCreate(netnsSpec(sandboxId, address, u), u.bridgeIndex);
      try {
        await make();
      } catch (e) {
        // Leftovers of a crash (a netns without its veth...) block creation: clear them once.
        logger.info("creating devices failed; clearing leftovers and retrying", {
          sandbox_id: sandboxId,
          error: (e as Error).message,
        });
        await remove(sandboxId);
        await make();
      }
    },
    configure: (sandboxId, address, u) => ip.netnsConfigure(netnsSpec(sandboxId, address, u)),
    remove,
  };
}
