import type { Logger } from "@bhatti/runtime";
import type { AttachmentFile } from "../adapters/attachment-file.js";
import type { IpLink } from "../adapters/ip-link.js";
import type { Nftables } from "../adapters/nftables.js";
import type { Addressing } from "../adapters/store-addressing.js";
import type { AddressPlan } from "./address-plan.js";
import type { SandboxState } from "./network-state.js";
import type { SandboxDevices } from "./sandbox-devices.js";
import type { UserNetworks } from "./user-networks.js";

/** What reconciliation, attach and the manager share: the ports and the one in-memory model. */
export interface NetworkContext {
  plan: AddressPlan;
  addressing: Addressing;
  ip: IpLink;
  nft: Nftables;
  file: AttachmentFile;
  logger: Logger;
  /** Every sandbox the store holds an address for (with devices or not). */
  sandboxes: Map<string, SandboxState>;
  users: UserNetworks;
  devices: SandboxDevices;
  /** Writes the attachment records of the sandboxes with devices. */
  saveRecords(): void;
  /** A store call, noting from its outcome whether the store is reachable (Health). */
  noteStore<T>(p: Promise<T>): Promise<T>;
}
