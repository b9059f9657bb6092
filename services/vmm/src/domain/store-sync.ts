import { Code, ConnectError } from "@connectrpc/connect";
import { type SandboxRecord, type StoreService, thermalStateOf } from "@bhatti/proto";
import type { Logger, ServiceClient } from "@bhatti/runtime";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Engine, SandboxInfo } from "../engine/engine.js";

/**
 * Keeps the store's sandbox rows in step with the engine, which is the truth about what runs:
 * at start-up (after the engine adopted what survived) and then periodically every row gets the
 * engine's status, thermal state, address and token; each lifecycle event (creates included)
 * updates its row at once. Best effort: a store outage is logged, never fails a lifecycle
 * operation. The engine itself never depends on the store.
 *
 * Each sweep also settles what a crash of any process left behind (finding #9), once it is
 * older than `graceMs` (which exceeds the gateway's create deadline, so nothing in flight is
 * touched):
 * - a `creating` row the engine finished is completed (the create succeeded; only the caller's
 *   answer was lost, and a retry by name returns it); one the engine does not have and is not
 *   creating is deleted, which frees its name, quota and address;
 * - a `destroying` row (the user asked for it) is finished: engine sandbox destroyed, row deleted;
 * - an engine sandbox without a row (the gateway rolled back while the vmm was down) is
 *   destroyed once it has been seen without a row for `graceMs`. The engine list is read before
 *   the rows and every row is inserted before its engine create starts, so a create in flight
 *   can never look like an orphan.
 * - a row the engine does not know otherwise becomes `unknown` (data may be quarantined; never
 *   deleted automatically).
 */
export interface StoreSync {
  reconcile(): Promise<ReconcileReport>;
  /** Starts following engine events; returns the stop function. */
  follow(): () => void;
  /** Runs `reconcile` every `intervalMs` (one at a time); returns the stop function. */
  every(intervalMs: number): () => void;
}

export interface ReconcileReport {
  updated: number;
  unknown: number;
  /** Engine sandboxes without a row, still within the grace period. */
  orphans: string[];
  /** Orphans destroyed by this sweep. */
  reaped: string[];
  /** `creating` rows completed from the engine. */
  completed: string[];
  /** `creating` rows the engine never finished, deleted. */
  abandoned: string[];
  /** `destroying` rows finished. */
  destroyed: string[];
}

export interface StoreSyncOptions {
  /** See `vmm_orphan_grace`. */
  graceMs: number;
  /** True while the engine is creating `id` (its row is `creating` on purpose). */
  creating?: (id: string) => boolean;
  now?: () => number;
}

export function createStoreSync(
  store: ServiceClient<typeof StoreService>["client"],
  engine: Engine,
  logger: Logger,
  options: StoreSyncOptions,
): StoreSync {
  const now = options.now ?? Date.now;
  const creating = options.creating ?? (() => false);
  /** When each engine sandbox was first seen without a row. */
  const orphanSince = new Map<string, number>();

  const update = async (info: SandboxInfo) => {
    await store.updateSandbox({
      anyUser: true,
      sandbox: info.id,
      status: info.status,
      thermalState: thermalStateOf(info.thermal),
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

  const ageOf = (row: SandboxRecord, field: "createdAt" | "updatedAt"): number => {
    const ts = row[field];
    return ts === undefined ? 0 : now() - timestampMs(ts);
  };

  const deleteRow = async (id: string) => {
    try {
      await store.deleteSandbox({ anyUser: true, sandbox: id });
    } catch (e) {
      if (ConnectError.from(e).code !== Code.NotFound) throw e;
    }
  };

  const reconcile = async (): Promise<ReconcileReport> => {
    // Engine first, rows second: see the interface comment.
    const byId = new Map(engine.list().map((s) => [s.id, s]));
    const rows = (await store.listSandboxes({ anyUser: true })).sandboxes;
    const report: ReconcileReport = {
      updated: 0,
      unknown: 0,
      orphans: [],
      reaped: [],
      completed: [],
      abandoned: [],
      destroyed: [],
    };
    for (const row of rows) {
      // The live view, not the listing: a create may have finished since the engine was listed.
      const info = engine.status(row.id);
      byId.delete(row.id);
      orphanSince.delete(row.id);
      try {
        if (row.status === "destroying") {
          if (ageOf(row, "updatedAt") < options.graceMs) continue;
          await engine.destroy(row.id);
          await deleteRow(row.id);
          report.destroyed.push(row.id);
          logger.warn("finished an interrupted destroy", { sandbox_id: row.id });
        } else if (info) {
          await update(info);
          report.updated++;
          if (row.status === "creating") {
            report.completed.push(row.id);
            logger.warn("completed a create whose caller was lost", { sandbox_id: row.id });
          }
        } else if (row.status === "creating") {
          if (creating(row.id) || ageOf(row, "createdAt") < options.graceMs) continue;
          await deleteRow(row.id);
          report.abandoned.push(row.id);
          logger.warn("deleted a creating row the engine never finished", { sandbox_id: row.id });
        } else if (row.status !== "unknown") {
          await store.updateSandbox({ anyUser: true, sandbox: row.id, status: "unknown" });
          report.unknown++;
        }
      } catch (e) {
        logger.warn("store reconcile: settling a row failed", {
          sandbox: row.id,
          error: ConnectError.from(e).rawMessage,
        });
      }
    }
    for (const id of orphanSince.keys()) if (!byId.has(id)) orphanSince.delete(id);
    for (const id of byId.keys()) {
      const since = orphanSince.get(id);
      if (since === undefined) orphanSince.set(id, now());
      if (since === undefined || now() - since < options.graceMs) {
        report.orphans.push(id);
        continue;
      }
      try {
        await engine.destroy(id);
        orphanSince.delete(id);
        report.reaped.push(id);
        logger.warn("destroyed a sandbox that has no store row", { sandbox_id: id });
      } catch (e) {
        logger.warn("destroying a sandbox without a row failed", { sandbox_id: id, error: e });
      }
    }
    if (report.orphans.length > 0)
      logger.warn("sandboxes without a store row", { sandboxes: report.orphans });
    return report;
  };

  return {
    reconcile,
    follow() {
      return engine.onEvent((event) => {
        // A created sandbox is synced too: if the gateway died before writing the row, the row
        // still becomes complete.
        if (event.kind === "sandbox.destroyed") return;
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
    every(intervalMs) {
      let running = false;
      const timer = setInterval(() => {
        if (running) return;
        running = true;
        reconcile()
          .then((r) => {
            const settled =
              r.reaped.length + r.completed.length + r.abandoned.length + r.destroyed.length + r.unknown;
            if (settled > 0) logger.info("reconciled with the store", { ...r });
          })
          .catch((e: unknown) =>
            logger.debug("store reconcile skipped", { error: ConnectError.from(e).rawMessage }),
          )
          .finally(() => {
            running = false;
          });
      }, intervalMs);
      timer.unref();
      return () => clearInterval(timer);
    },
  };
}
