import { StoreService } from "@bhatti/proto";
import { processHealth, runService } from "@bhatti/runtime";

// The store process: serves StoreService on <socket_dir>/store.sock.
await runService({
  name: "store",
  async setup() {
    return (router) =>
      router.service(StoreService, {
        health: () => ({ health: processHealth("store") }),
      });
  },
});
