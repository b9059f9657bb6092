import { join } from "node:path";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { StoreService } from "@bhatti/proto";
import { createLogger, createServiceClient, processHealth, startConnectServer } from "@bhatti/runtime";
const dir = mkdtempSync(join(tmpdir(), "bhatti-test-st-"));
const sock = join(dir, "s.sock");
await startConnectServer({
  socketPath: sock,
  httpVersion: "1.1",
  logger: createLogger({ service: "x", level: "error" }),
  routes: (r) => r.service(StoreService, { health: () => ({ health: processHealth("store") }) }),
});
const c = createServiceClient(StoreService, sock, { httpVersion: "1.1" });
for (let i = 0; i < 20; i++) await c.client.health({});
process.stderr.write("MARK-START\n");
for (let i = 0; i < 3; i++) await c.client.health({});
process.stderr.write("MARK-END\n");
c.close();
process.exit(0);
