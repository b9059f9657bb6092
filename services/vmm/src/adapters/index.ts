// `@bhatti/service-vmm/adapters`: the host adapters a gVisor engine is composed with outside the vmm
// process (test and bench factories): guest init, guest dialing, a stand-in network, loop disks, mounts.
export { type GuestInit, createAgentInit } from "./agent-launch.js";
export { type GuestDialer, createDirectDialer, createNetnsDialer } from "./guest-dialer.js";
export {
  type LocalNetnsNetwork,
  type LocalNetnsNetworkOptions,
  createLocalNetnsNetwork,
} from "./local-netns-network.js";
export { freeBytes, loopDevicesBackedBy } from "./loop-disk.js";
export { mountedPaths } from "./rootfs.js";
export { DEFAULT_LOG_CAP_BYTES } from "./runsc.js";
