import { join } from "node:path";
import {
  StoreService,
  VmmImageService,
  VmmService,
  VmmSnapshotService,
  VmmVolumeService,
} from "@bhatti/proto";
import {
  StartupError,
  createServiceClient,
  healthProbeTimeoutMs,
  runService,
  serviceSocketPath,
} from "@bhatti/runtime";
import { createAgentInit } from "./adapters/agent-launch.js";
import { createDirectDialer } from "./adapters/guest-dialer.js";
import { createLocalNetnsNetwork } from "./adapters/local-netns-network.js";
import { createNetworkServiceNetwork } from "./adapters/network-service-client.js";
import type { SandboxNetwork } from "./adapters/sandbox-network.js";
import { engineErrorInterceptor } from "./api/engine-error-interceptor.js";
import { createVmmSnapshotHandlers } from "./api/snapshots/vmm-snapshot-handlers.js";
import { createVmmHandlers } from "./api/vmm-handlers.js";
import { createStoreSync } from "./domain/store-sync.js";
import { createGvisorEngine } from "./engines/gvisor/gvisor-engine.js";
import { reapOrphanSnapshots } from "./engines/gvisor/snapshots/snapshot-reconcile.js";
import { createVmmVolumeHandlers } from "./volumes/vmm-volume-handlers.js";
import { createEngineImages, createImageHandlers } from "./images/index.js";

/**
 * The deadline of the network service's Health inside the engine's: longer than a plain probe
 * because that Health re-checks the product's nft table (bounded by rpc_timeout all the same).
 */
const NETWORK_HEALTH_TIMEOUT_MS = 2_000;

/** Parses `vmm_local_network` ("netns=…,bridge=…,subnet=…"). */
function parseLocalNetwork(value: string): { netns: string; bridge: string; subnet: string } {
  const kv = Object.fromEntries(value.split(",").map((p) => p.split("=", 2) as [string, string]));
  const { netns, bridge, subnet } = kv;
  if (!netns || !bridge || !subnet || !/^\d+\.\d+\.\d+$/.test(subnet)) {
    throw new StartupError(
      `vmm_local_network "${value}" must be "netns=<name>,bridge=<name>,subnet=<a.b.c>"`,
    );
  }
  return { netns, bridge, subnet };
}

// The vmm process: owns every sandbox's lifecycle behind the engine; serves VmmService on
// <socket_dir>/vmm.sock. Restarting it never touches running sandboxes: it adopts them.
await runService({
  name: "vmm",
  async setup({ config, logger, shutdown }) {
    if (config.engine !== "gvisor") {
      throw new StartupError(`engine "${config.engine}" cannot run on this host; only gvisor is available`);
    }
    let network: SandboxNetwork;
    if (config.vmm_local_network !== "none") {
      const local = parseLocalNetwork(config.vmm_local_network);
      const net = createLocalNetnsNetwork({
        hostNetns: local.netns,
        bridge: local.bridge,
        subnet: local.subnet,
        prefix: "bt",
        stateFile: join(config.state_dir, "local-network.json"),
      });
      await net.setup();
      network = net;
    } else {
      const net = createNetworkServiceNetwork(serviceSocketPath(config.socket_dir, "network"), {
        rpcTimeoutMs: config.rpc_timeout,
        healthTimeoutMs: healthProbeTimeoutMs(config, NETWORK_HEALTH_TIMEOUT_MS),
      });
      shutdown.add(() => net.close());
      network = net;
    }
    let init: ReturnType<typeof createAgentInit>;
    try {
      init = createAgentInit(config.agent_package_dir);
    } catch (e) {
      throw new StartupError((e as Error).message);
    }
    const engine = createGvisorEngine({
      stateDir: config.state_dir,
      runscPath: config.runsc_path,
      platform: config.runsc_platform,
      cgroupParent: config.cgroup_parent,
      warmMethod: config.vmm_warm_method,
      defaultDiskSizeMb: config.default_disk_size_mb,
      hostMemoryReserveMb: config.host_memory_reserve_mb,
      hostDiskReserveMb: config.host_disk_reserve_mb,
      templateImages: config.create_template_images,
      pool: { size: config.create_pool_size, idleMs: config.create_pool_idle },
      network,
      dialer: createDirectDialer(),
      init,
      logger,
    });
    const adopted = await engine.adopt();
    logger.info("adopted sandboxes", {
      running: adopted.running.length,
      cold: adopted.cold.length,
      unknown: adopted.unknown.length,
      removed: adopted.removed.length,
    });
    shutdown.add(() => engine.close());
    // Snapshots a crash cut short (or a removal it interrupted) are never left half there.
    const swept = engine.snapshots.sweep();
    if (swept.length > 0) logger.info("removed unfinished snapshots", { removed: swept });
    // After adoption (which kills containers no sandbox owns): builds never block startup.
    engine.templates.start();

    const store = createServiceClient(StoreService, serviceSocketPath(config.socket_dir, "store"), {
      defaultTimeoutMs: config.rpc_timeout,
    });
    shutdown.add(() => store.close());
    const sync = createStoreSync(store.client, engine, logger, {
      graceMs: config.vmm_orphan_grace,
      creating: (id) => engine.isCreating(id),
    });
    sync
      .reconcile()
      .then((r) => logger.info("reconciled with the store", { ...r }))
      .catch((e: unknown) => logger.warn("store reconcile skipped", { error: (e as Error).message }));
    shutdown.add(sync.follow());
    // What a crash left is settled once it is older than the grace period: sweep a few times per period.
    shutdown.add(sync.every(Math.min(60_000, Math.max(1_000, Math.floor(config.vmm_orphan_grace / 4)))));

    // Snapshot files whose row was never written (a crash between the two) are removed after the grace.
    const reapSnapshots = () =>
      reapOrphanSnapshots({
        root: engine.snapshots.root,
        graceMs: config.vmm_orphan_grace,
        logger,
        rowPaths: async (userId) =>
          new Set((await store.client.listSnapshots({ userId })).snapshots.map((s) => s.path)),
      }).catch((e: unknown) => logger.warn("snapshot reap failed", { error: (e as Error).message }));
    void reapSnapshots();
    const reapTimer = setInterval(reapSnapshots, Math.max(1_000, Math.floor(config.vmm_orphan_grace / 4)));
    reapTimer.unref();
    shutdown.add(() => clearInterval(reapTimer));

    // Image tasks live in this process's memory; what a killed one left in images/.tmp goes now.
    const images = createEngineImages(engine, {
      taskTimeoutMs: config.image_task_timeout,
      diskReserveMb: config.host_disk_reserve_mb,
      logger,
    });
    const handlers = createVmmHandlers({
      engine,
      images: engine.images,
      defaultImage: config.default_image,
      // The store is optional for the vmm (rows are synced best effort): a fact, not a dependency.
      facts: async () => {
        try {
          const h = await store.client.health({}, { timeoutMs: healthProbeTimeoutMs(config) });
          return { store: h.health?.ready ? "ready" : "not ready" };
        } catch (e) {
          return { store: `unreachable: ${(e as Error).message}` };
        }
      },
    });
    return {
      routes: (router) => {
        router.service(VmmService, handlers);
        router.service(VmmSnapshotService, createVmmSnapshotHandlers(engine.snapshots));
        router.service(VmmVolumeService, createVmmVolumeHandlers(engine.volumes));
        router.service(VmmImageService, createImageHandlers(images.service));
      },
      interceptors: [engineErrorInterceptor],
    };
  },
});
