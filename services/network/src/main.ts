import { NetworkService } from "@bhatti/proto";
import { processHealth, runService } from "@bhatti/runtime";

// The network process: serves NetworkService on <socket_dir>/network.sock.
await runService({
  name: "network",
  async setup() {
    return (router) =>
      router.service(NetworkService, {
        health: () => ({ health: processHealth("network") }),
      });
  },
});
