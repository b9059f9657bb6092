import { ThermalService } from "@bhatti/proto";
import { processHealth, runService } from "@bhatti/runtime";

// The thermal process: serves ThermalService on <socket_dir>/thermal.sock.
await runService({
  name: "thermal",
  async setup() {
    return (router) =>
      router.service(ThermalService, {
        health: () => ({ health: processHealth("thermal") }),
      });
  },
});
