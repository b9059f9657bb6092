import {
  NetworkService,
  StoreService,
  ThermalService,
  VmmService,
  VmmSnapshotService,
  VmmVolumeService,
  VmmImageService,
} from "@bhatti/proto";
import { type ServerConfig, createServiceClient, serviceSocketPath } from "@bhatti/runtime";
import type { Client } from "@connectrpc/connect";

/** Connect clients for the four internal services, over their Unix sockets. */
export interface ServiceClients {
  readonly store: Client<typeof StoreService>;
  readonly network: Client<typeof NetworkService>;
  readonly vmm: Client<typeof VmmService>;
  /** Named snapshots, served by the vmm on its socket. */
  readonly vmmSnapshots: Client<typeof VmmSnapshotService>;
  readonly thermal: Client<typeof ThermalService>;
  /** The vmm's volume images (served on vmm.sock next to VmmService). */
  readonly vmmVolumes: Client<typeof VmmVolumeService>;
  /** The vmm's image tasks (pull, import, save), on the vmm's socket. */
  readonly vmmImages: Client<typeof VmmImageService>;
  /** Closes every HTTP/2 session. */
  close(): void;
}

export function createServiceClients(config: ServerConfig): ServiceClients {
  const options = { defaultTimeoutMs: config.rpc_timeout };
  const store = createServiceClient(StoreService, serviceSocketPath(config.socket_dir, "store"), options);
  const network = createServiceClient(
    NetworkService,
    serviceSocketPath(config.socket_dir, "network"),
    options,
  );
  const vmm = createServiceClient(VmmService, serviceSocketPath(config.socket_dir, "vmm"), options);
  const vmmSnapshots = createServiceClient(
    VmmSnapshotService,
    serviceSocketPath(config.socket_dir, "vmm"),
    options,
  );
  const vmmImages = createServiceClient(
    VmmImageService,
    serviceSocketPath(config.socket_dir, "vmm"),
    options,
  );
  const thermal = createServiceClient(
    ThermalService,
    serviceSocketPath(config.socket_dir, "thermal"),
    options,
  );
  const vmmVolumes = createServiceClient(
    VmmVolumeService,
    serviceSocketPath(config.socket_dir, "vmm"),
    options,
  );
  return {
    store: store.client,
    network: network.client,
    vmm: vmm.client,
    vmmSnapshots: vmmSnapshots.client,
    thermal: thermal.client,
    vmmVolumes: vmmVolumes.client,
    vmmImages: vmmImages.client,
    close: () => {
      for (const c of [store, network, vmm, vmmSnapshots, thermal, vmmVolumes, vmmImages]) c.close();
    },
  };
}
