import { VmmService } from "@bhatti/proto";
import { processHealth, runService } from "@bhatti/runtime";

// The vmm process: serves VmmService on <socket_dir>/vmm.sock.
await runService({
  name: "vmm",
  async setup() {
    return (router) =>
      router.service(VmmService, {
        health: () => ({ health: processHealth("vmm") }),
      });
  },
});
