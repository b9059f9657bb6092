import { randomBytes } from "node:crypto";
import { StoreService, ThermalService, VmmService } from "@bhatti/proto";
import { createServiceClient, runService, serviceSocketPath } from "@bhatti/runtime";
import { createAgentActivityProbe } from "./adapters/agent-activity-probe.js";
import { createStorePort } from "./adapters/store-port.js";
import { createVmmPort } from "./adapters/vmm-port.js";
import { createThermalHandlers } from "./api/thermal-handlers.js";
import { createThermalManager } from "./domain/thermal-manager.js";

// The thermal process: decides and drives hot -> warm -> cold and every wake; serves
// ThermalService on <socket_dir>/thermal.sock. Its state lives in the vmm (thermal state)
// and the store (keep_hot, last activity), so a restart continues where it stopped.
await runService({
  name: "thermal",
  async setup({ config, logger, shutdown }) {
    // Pause, stop and wake carry their own deadlines (vmm-port.ts); every other call uses rpc_timeout.
    const clientOptions = { defaultTimeoutMs: config.rpc_timeout };
    const vmm = createServiceClient(VmmService, serviceSocketPath(config.socket_dir, "vmm"), clientOptions);
    const store = createServiceClient(
      StoreService,
      serviceSocketPath(config.socket_dir, "store"),
      clientOptions,
    );
    shutdown.add(() => {
      vmm.close();
      store.close();
    });
    const manager = createThermalManager({
      vmm: createVmmPort(vmm.client, logger),
      store: createStorePort(store.client),
      probe: createAgentActivityProbe(),
      logger,
      thresholds: { warmAfterMs: config.thermal_warm_after, coldAfterMs: config.thermal_cold_after },
      tickMs: config.thermal_tick,
      maxColdWakes: config.thermal_max_cold_wakes,
    });
    manager.start();
    // Stopping waits for the review and any transition in flight, so none is cut halfway.
    shutdown.add(() => manager.stop());
    logger.info("thermal policy running", {
      warm_after_ms: config.thermal_warm_after,
      cold_after_ms: config.thermal_cold_after,
      tick_ms: config.thermal_tick,
    });
    const handlers = createThermalHandlers(manager, randomBytes(8).toString("hex"));
    return { routes: (router) => router.service(ThermalService, handlers) };
  },
});
