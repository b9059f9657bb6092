import { ConnectError } from "@connectrpc/connect";
import type { StoreService } from "@bhatti/proto";
import type { Logger, ServiceClient } from "@bhatti/runtime";
import type { Engine, SandboxInfo } from "../engine/engine.js";

/**
 * Keeps the store's sandbox rows in step with the engine, which is the truth about what runs:
 * at start-up (after the engine adopted what survived) every row gets the engine's status,
 * thermal state, address and token, and rows the engine does not know become `unknown`; after
 * that each lifecycle event updates its row. Best effort: a store outage is logged, never
 * fails a lifecycle operation. The engine itself never depends on the store.
 */
export interface StoreSync {
  reconcile(): Promise<{ updated: number; unknown: number; orphans: string[] }>;
  /** Starts following engine events; returns the stop function. */
  follow(): () => void;
}

export function createStoreSync(
  store: ServiceClient<typeof StoreService>["client"],
  engine: Engine,
  logger: Logger,
): StoreSync {
  const update = async (info: SandboxInfo) => {
    await store.updateSandbox({
      anyUser: true,
      sandbox: info.id,
      status: info.status,
      thermalState: info.thermal,
      ip: info.address,
      engineId: info.id,
      agentToken: info.agent.token,
      engineStateJson: JSON.stringify({
        engine: info.engine,
        image: info.image,
        cpus: info.cpus,
        memory_mb: info.memoryMb,
        gateway: info.gateway,
        restore_error: info.restoreError ?? null,
        ...info.engineDetails,
      }),
    });
  };
  return {
    async reconcile() {
      const rows = (await store.listSandboxes({ anyUser: true })).sandboxes;
      const byId = new Map(engine.list().map((s) => [s.id, s]));
      let updated = 0;
      let unknown = 0;
      for (const row of rows) {
        const info = byId.get(row.id);
        byId.delete(row.id);
        try {
          if (info) {
            await update(info);
            updated++;
          } else if (row.status !== "unknown") {
            await store.updateSandbox({ anyUser: true, sandbox: row.id, status: "unknown" });
            unknown++;
          }
        } catch (e) {
          logger.warn("store reconcile: update failed", {
            sandbox: row.id,
            error: ConnectError.from(e).rawMessage,
          });
        }
      }
      const orphans = [...byId.keys()];
      if (orphans.length > 0) logger.warn("sandboxes without a store row", { sandboxes: orphans });
      return { updated, unknown, orphans };
    },
    follow() {
      return engine.onEvent((event) => {
        if (event.kind === "sandbox.destroyed" || event.kind === "sandbox.created") return;
        const info = engine.status(event.sandboxId);
        if (!info) return;
        update(info).catch((e: unknown) =>
          logger.debug("store sync: update failed", {
            sandbox: event.sandboxId,
            error: ConnectError.from(e).rawMessage,
          }),
        );
      });
    },
  };
}
