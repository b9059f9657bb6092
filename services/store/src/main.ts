import { join } from "node:path";
import { StoreService } from "@bhatti/proto";
import { StartupError, processHealth, runService } from "@bhatti/runtime";
import { AgeKeyError } from "./adapters/age-cipher.js";
import { apiUrlFromListen, writeClientConfig } from "./adapters/client-config-file.js";
import { DatabaseRefusedError } from "./adapters/sqlite-database.js";
import { createAddressHandlers } from "./api/address-handlers.js";
import { createAdminHandlers } from "./api/admin-handlers.js";
import { createEventHandlers } from "./api/event-handlers.js";
import { createImageHandlers } from "./api/image-handlers.js";
import { createPublishHandlers } from "./api/publish-handlers.js";
import { createSandboxHandlers } from "./api/sandbox-handlers.js";
import { createSecretHandlers } from "./api/secret-handlers.js";
import { createSnapshotHandlers } from "./api/snapshot-handlers.js";
import { createTaskHandlers } from "./api/task-handlers.js";
import { createUserHandlers } from "./api/user-handlers.js";
import { createVolumeHandlers } from "./api/volume-handlers.js";
import { type Store, openStore, startHousekeeping } from "./store.js";

// The store process: owns the only database and serves StoreService on <socket_dir>/store.sock.
await runService({
  name: "store",
  async setup({ config, logger, shutdown }) {
    let store: Store;
    try {
      store = await openStore({ stateDir: config.state_dir });
    } catch (e) {
      if (e instanceof DatabaseRefusedError || e instanceof AgeKeyError) throw new StartupError(e.message);
      throw e;
    }
    // Registered first so it runs last: the socket closes before the database does.
    shutdown.add(() => {
      store.events.record("daemon.shutdown", { meta: { process: "store" } });
      store.close();
    });
    let admin: ReturnType<Store["users"]["ensureFirstAdmin"]>;
    try {
      admin = store.users.ensureFirstAdmin((apiKey) =>
        writeClientConfig(config.client_config_file, apiUrlFromListen(config.listen), apiKey),
      );
    } catch (e) {
      throw new StartupError(
        `cannot write the first admin's key to ${config.client_config_file}: ${(e as Error).message}`,
      );
    }
    if (admin)
      logger.info("created the admin user", { user_id: admin.id, key_file: config.client_config_file });
    store.events.record("daemon.started", { meta: { process: "store", pid: process.pid } });
    const stopHousekeeping = startHousekeeping(store, {
      metricsIntervalMs: config.metrics_interval,
      eventRetentionMs: config.event_retention,
      metricsRetentionMs: config.metrics_retention,
      onError: (what, error) => logger.error(`${what} failed`, { error }),
    });
    shutdown.add(stopHousekeeping);
    return (router) =>
      router.service(StoreService, {
        health: () => ({
          health: processHealth("store", [
            { name: "database", ready: store.db.open, detail: store.databasePath },
          ]),
        }),
        ...createAddressHandlers(store.addresses),
        ...createUserHandlers(store.users),
        ...createEventHandlers(store.events, store.users),
        ...createSandboxHandlers(store.sandboxes),
        ...createSecretHandlers(store.secrets),
        ...createAdminHandlers(
          store.db,
          store.users,
          store.events,
          store.metrics,
          config.backup_dir === "" ? join(config.state_dir, "backups") : config.backup_dir,
        ),
        ...createVolumeHandlers(store.volumes),
        ...createImageHandlers(store.images),
        ...createSnapshotHandlers(store.snapshots),
        ...createPublishHandlers(store.publishRules, store.shellTokens),
        ...createTaskHandlers(store.tasks),
      });
  },
});
