import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { MetricsSnapshotSchema, StoreService } from "@bhatti/proto";
import { backupDatabase } from "../domain/backup.js";
import type { EventLog } from "../domain/events.js";
import type { MetricsRecorder, MetricsSnapshotRow } from "../domain/metrics.js";
import type { UserDirectory } from "../domain/users.js";
import type { SqliteDatabase } from "../adapters/sqlite-database.js";
import { fromTimestamp, toTimestamp } from "./convert.js";

type AdminMethods = Pick<ServiceImpl<typeof StoreService>, "getMetrics" | "backup">;

export function metricsToProto(s: MetricsSnapshotRow): MessageInitShape<typeof MetricsSnapshotSchema> {
  return {
    ts: toTimestamp(s.ts),
    sandboxesTotal: s.sandboxes_total,
    sandboxesByStatus: s.sandboxes_by_status,
    sandboxesByThermal: s.sandboxes_by_thermal,
    usersTotal: s.users_total,
    usersWithSandboxes: s.users_with_sandboxes,
    sandboxesPerUser: s.sandboxes_per_user,
    hostMemTotalMb: BigInt(s.host_mem_total_mb),
    hostMemAvailableMb: BigInt(s.host_mem_available_mb),
    hostDiskTotalMb: BigInt(s.host_disk_total_mb),
    hostDiskAvailableMb: BigInt(s.host_disk_available_mb),
    hostLoad1m: s.host_load_1m,
    eventsTotal: BigInt(s.events_total),
  };
}

/** Admin-only: metrics and online backup. */
export function createAdminHandlers(
  db: SqliteDatabase,
  users: UserDirectory,
  events: EventLog,
  metrics: MetricsRecorder,
  /** The only directory backups are written to (config backup_dir). */
  backupDir: string,
): AdminMethods {
  return {
    getMetrics(req) {
      users.requireAdmin(req.actingUserId);
      const since = fromTimestamp(req.since) ?? new Date(Date.now() - 3_600_000).toISOString();
      const limit = Math.min(req.limit || 100, 10_000);
      return {
        current: metricsToProto(metrics.current()),
        history: metrics.history(since, limit).map(metricsToProto),
      };
    },
    async backup(req) {
      users.requireAdmin(req.actingUserId);
      const result = await backupDatabase(db, events, backupDir, req.path);
      return { path: result.path, sizeBytes: BigInt(result.sizeBytes), schemaVersion: result.schemaVersion };
    },
  };
}
