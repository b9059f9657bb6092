import type { HostStats } from "../adapters/host-stats.js";
import type { SqliteDatabase } from "../adapters/sqlite-database.js";
import { nowIso } from "./clock.js";

export interface MetricsSnapshotRow {
  ts: string;
  sandboxes_total: number;
  sandboxes_by_status: Record<string, number>;
  sandboxes_by_thermal: Record<string, number>;
  users_total: number;
  users_with_sandboxes: number;
  sandboxes_per_user: Record<string, number>;
  host_mem_total_mb: number;
  host_mem_available_mb: number;
  host_disk_total_mb: number;
  host_disk_available_mb: number;
  host_load_1m: number;
  events_total: number;
}

export interface MetricsRecorder {
  /** Computes a snapshot of now without storing it. */
  current(): MetricsSnapshotRow;
  /** Computes and stores a snapshot. */
  record(): MetricsSnapshotRow;
  history(sinceIso: string, limit: number): MetricsSnapshotRow[];
  prune(beforeIso: string): number;
}

export function createMetricsRecorder(db: SqliteDatabase, hostStats: () => HostStats): MetricsRecorder {
  const byStatus = db.prepare<[], { k: string; n: number }>(
    "SELECT status AS k, count(*) AS n FROM sandboxes GROUP BY status",
  );
  // Thermal state only means something for sandboxes that are running.
  const byThermal = db.prepare<[], { k: string; n: number }>(
    "SELECT thermal_state AS k, count(*) AS n FROM sandboxes WHERE status = 'running' GROUP BY thermal_state",
  );
  const perUser = db.prepare<[], { k: string; n: number }>(
    "SELECT u.name AS k, count(s.id) AS n FROM users u JOIN sandboxes s ON s.user_id = u.id GROUP BY u.id",
  );
  const usersTotal = db.prepare<[], { n: number }>("SELECT count(*) AS n FROM users");
  const eventsTotal = db.prepare<[], { n: number }>("SELECT count(*) AS n FROM events");
  const insert =
    db.prepare(`INSERT OR REPLACE INTO metrics_snapshots (ts, sandboxes_total, sandboxes_by_status,
    sandboxes_by_thermal, users_total, users_with_sandboxes, sandboxes_per_user, host_mem_total_mb,
    host_mem_available_mb, host_disk_total_mb, host_disk_available_mb, host_load_1m, events_total)
    VALUES (@ts, @sandboxes_total, @sandboxes_by_status, @sandboxes_by_thermal, @users_total,
    @users_with_sandboxes, @sandboxes_per_user, @host_mem_total_mb, @host_mem_available_mb,
    @host_disk_total_mb, @host_disk_available_mb, @host_load_1m, @events_total)`);
  const history = db.prepare<[string, number], Record<string, string | number>>(
    "SELECT * FROM (SELECT * FROM metrics_snapshots WHERE ts >= ? ORDER BY ts DESC LIMIT ?) ORDER BY ts",
  );
  const prune = db.prepare("DELETE FROM metrics_snapshots WHERE ts < ?");

  const counts = (rows: { k: string; n: number }[]) => Object.fromEntries(rows.map((r) => [r.k, r.n]));

  const current = (): MetricsSnapshotRow => {
    const host = hostStats();
    const status = counts(byStatus.all());
    const users = counts(perUser.all());
    return {
      ts: nowIso(),
      sandboxes_total: Object.values(status).reduce((a, b) => a + b, 0),
      sandboxes_by_status: status,
      sandboxes_by_thermal: counts(byThermal.all()),
      users_total: usersTotal.get()?.n ?? 0,
      users_with_sandboxes: Object.keys(users).length,
      sandboxes_per_user: users,
      host_mem_total_mb: host.memTotalMb,
      host_mem_available_mb: host.memAvailableMb,
      host_disk_total_mb: host.diskTotalMb,
      host_disk_available_mb: host.diskAvailableMb,
      host_load_1m: host.load1m,
      events_total: eventsTotal.get()?.n ?? 0,
    };
  };

  return {
    current,
    record() {
      const snap = current();
      insert.run({
        ...snap,
        sandboxes_by_status: JSON.stringify(snap.sandboxes_by_status),
        sandboxes_by_thermal: JSON.stringify(snap.sandboxes_by_thermal),
        sandboxes_per_user: JSON.stringify(snap.sandboxes_per_user),
      });
      return snap;
    },
    history: (sinceIso, limit) =>
      history.all(sinceIso, limit).map((r) => ({
        ...(r as unknown as MetricsSnapshotRow),
        sandboxes_by_status: JSON.parse(String(r["sandboxes_by_status"])) as Record<string, number>,
        sandboxes_by_thermal: JSON.parse(String(r["sandboxes_by_thermal"])) as Record<string, number>,
        sandboxes_per_user: JSON.parse(String(r["sandboxes_per_user"])) as Record<string, number>,
      })),
    prune: (beforeIso) => prune.run(beforeIso).changes,
  };
}
