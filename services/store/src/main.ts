import { StoreService } from "@bhatti/proto";
import { StartupError, processHealth, runService } from "@bhatti/runtime";
import { DatabaseRefusedError } from "./adapters/sqlite-database.js";
import { createAddressHandlers } from "./api/address-handlers.js";
import { type Store, openStore } from "./store.js";

// The store process: owns the only database and serves StoreService on <socket_dir>/store.sock.
await runService({
  name: "store",
  async setup({ config, shutdown }) {
    let store: Store;
    try {
      store = openStore({ stateDir: config.state_dir });
    } catch (e) {
      if (e instanceof DatabaseRefusedError) throw new StartupError(e.message);
      throw e;
    }
    // Registered first so it runs last: the socket closes before the database does.
    shutdown.add(() => store.close());
    return (router) =>
      router.service(StoreService, {
        health: () => ({
          health: processHealth("store", [
            { name: "database", ready: store.db.open, detail: store.databasePath },
          ]),
        }),
        ...createAddressHandlers(store.addresses),
      });
  },
});
