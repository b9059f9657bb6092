// The writes one Connect unary call makes over HTTP/1.1 (client and server in this process), for
// strace: output between MARK-START and MARK-END is three calls.
//   strace -f -e trace=write,writev,read node --conditions=source --import tsx bench/h1rpc/strace-probe.ts
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StoreService } from "@bhatti/proto";
import { createLogger, createServiceClient, processHealth, startConnectServer } from "@bhatti/runtime";

const dir = mkdtempSync(join(tmpdir(), "bhatti-test-st-"));
try {
  const server = await startConnectServer({
    socketPath: join(dir, "s.sock"),
    httpVersion: "1.1",
    logger: createLogger({ service: "probe", level: "error" }),
    routes: (r) => r.service(StoreService, { health: () => ({ health: processHealth("store") }) }),
  });
  const c = createServiceClient(StoreService, join(dir, "s.sock"), { httpVersion: "1.1" });
  for (let i = 0; i < 20; i++) await c.client.health({});
  process.stderr.write("MARK-START\n");
  for (let i = 0; i < 3; i++) await c.client.health({});
  process.stderr.write("MARK-END\n");
  c.close();
  await server.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
