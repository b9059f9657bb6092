import { join } from "node:path";
import { ShareStoreService, StoreService } from "@bhatti/proto";
import { StartupError, runService } from "@bhatti/runtime";
import { AgeKeyError } from "./adapters/age-cipher.js";
import { apiUrlFromListen, writeClientConfig } from "./adapters/client-config-file.js";
import { loadOrCreateShareKey } from "./adapters/share-key.js";
import { DatabaseRefusedError } from "./adapters/sqlite-database.js";
import { createShareStoreHandlers } from "./api/share-handlers.js";
import { createStoreHandlers } from "./api/store-handlers.js";
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
    const handlers = createStoreHandlers({
      store,
      backupDir: config.backup_dir === "" ? join(config.state_dir, "backups") : config.backup_dir,
    });
    let shareKey: Buffer | undefined;
    const shareHandlers = createShareStoreHandlers(store.shares, () => {
      shareKey ??= loadOrCreateShareKey(config.state_dir);
      return shareKey;
    });
    return {
      routes: (router) => router.service(StoreService, handlers).service(ShareStoreService, shareHandlers),
    };
  },
});
