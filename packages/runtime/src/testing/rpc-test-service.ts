// A child process serving a small VmmService on a Unix socket through startConnectServer, for
// tests of the inter-service transport across real processes (connect-transport-process.test.ts).
//   node --conditions=source --import tsx rpc-test-service.ts <socketPath> <1.1|2>
// Health answers with this pid; GetSandboxStatus("hang") never answers (a call in flight when the
// test kills the process); WatchEvents streams one "health" event per Health call served.
import { VmmService, type WatchEventsResponse, WatchEventsResponseSchema } from "@bhatti/proto";
import { create } from "@bufbuild/protobuf";
import { startConnectServer } from "../connect-server.js";
import { processHealth } from "../health.js";
import { createLogger } from "../logger.js";
import type { RpcHttpVersion } from "../rpc-http-version.js";

const socketPath = process.argv[2] ?? "";
const httpVersion = (process.argv[3] ?? "1.1") as RpcHttpVersion;

const watchers = new Set<(e: WatchEventsResponse) => void>();

await startConnectServer({
  socketPath,
  httpVersion,
  logger: createLogger({ service: "rpc-test", level: "error" }),
  routes: (r) =>
    r.service(VmmService, {
      health: () => {
        for (const w of watchers) w(create(WatchEventsResponseSchema, { kind: "health" }));
        return { health: processHealth("vmm") };
      },
      getSandboxStatus: (_req, ctx) =>
        new Promise((_resolve, reject) => {
          ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason));
        }),
      async *watchEvents(_req, ctx) {
        const queue: WatchEventsResponse[] = [create(WatchEventsResponseSchema, { kind: "ready" })];
        let wake: () => void = () => {};
        const push = (e: WatchEventsResponse) => {
          queue.push(e);
          wake();
        };
        watchers.add(push);
        ctx.signal.addEventListener("abort", () => wake(), { once: true });
        try {
          while (!ctx.signal.aborted) {
            const next = queue.shift();
            if (next !== undefined) {
              yield next;
              continue;
            }
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
          }
        } finally {
          watchers.delete(push);
        }
      },
    }),
});
process.send?.("ready");
