import { resolve } from "node:path";
import { eventJson, metricsJson } from "@bhatti/proto/rest-json";
import { AdminService } from "@bhatti/proto/v1/admin_pb";
import { isUserId } from "@bhatti/proto/vocabulary";
import { UserService } from "@bhatti/proto/v1/user_pb";
import { type Timestamp, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { CliError } from "../cli-error.js";
import { createGatewayClient } from "../gateway-client.js";
import type { GlobalOptions } from "../global-options.js";
import { emit, printTable } from "../output.js";

/** The command's flags, declared here so the command imports the action (lazily), never the reverse. */
export interface AdminEventsFlags {
  type?: string;
  since?: string;
  until?: string;
  sandbox?: string;
  user?: string;
  limit?: string;
  count?: boolean;
}

const units: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** "30m", "24h", "7d" back from now, or anything Date understands (e.g. 2026-01-31). */
export function parseSince(flag: string, raw: string, now = Date.now()): Timestamp {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d|w)$/.exec(raw.trim());
  const ms = m ? now - Number(m[1]) * (units[m[2] ?? "s"] ?? 1000) : Date.parse(raw);
  if (!Number.isFinite(ms))
    throw new CliError(`${flag}: expected a duration like 24h or 7d, or a date; got "${raw}"`);
  return timestampFromDate(new Date(ms));
}

function parseLimit(raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new CliError(`--limit needs a positive integer, got "${raw}"`);
  return n;
}

export async function runAdminEvents(options: GlobalOptions, flags: AdminEventsFlags): Promise<void> {
  const { client } = createGatewayClient(AdminService, options);
  let userId = flags.user ?? "";
  if (userId !== "" && !isUserId(userId)) {
    const users = createGatewayClient(UserService, options).client;
    const found = (await users.listUsers({})).users.find((u) => u.user?.name === flags.user);
    if (!found?.user) throw new CliError(`user "${flags.user}" not found`);
    userId = found.user.id;
  }
  const res = await client.listEvents({
    filter: {
      ...(flags.since ? { since: parseSince("--since", flags.since) } : {}),
      ...(flags.until ? { until: parseSince("--until", flags.until) } : {}),
      typePrefix: flags.type ?? "",
      sandboxId: flags.sandbox ?? "",
      userId,
      limit: flags.count ? 1 : parseLimit(flags.limit, 50),
    },
  });
  if (flags.count) {
    emit(options, { count: Number(res.total) }, () => process.stdout.write(`${res.total}\n`));
    return;
  }
  const rows = res.events.map(eventJson);
  emit(options, { events: rows, total: Number(res.total) }, () => {
    printTable(
      ["TIME", "TYPE", "USER", "SANDBOX", "DETAILS"],
      rows.map((r) => [r.ts, r.type, r.user_id || "-", r.sandbox_id || "-", JSON.stringify(r.meta)]),
    );
    if (res.total > BigInt(rows.length))
      process.stderr.write(`(${rows.length} of ${res.total}; use --limit)\n`);
  });
}

const counts = (map: Record<string, number>) =>
  Object.entries(map)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ") || "-";

export async function runAdminMetrics(
  options: GlobalOptions,
  flags: { since?: string; limit?: string },
): Promise<void> {
  const { client } = createGatewayClient(AdminService, options);
  const res = await client.getMetrics({
    ...(flags.since ? { since: parseSince("--since", flags.since) } : {}),
    limit: parseLimit(flags.limit, 20),
  });
  const current = res.current === undefined ? undefined : metricsJson(res.current);
  const history = res.history.map(metricsJson);
  // REST writes `current: null` before the first sample.
  emit(options, { current: current ?? null, history }, () => {
    if (!current) return;
    const lines = [
      `sandboxes:  ${current.sandboxes_total} (${counts(current.sandboxes_by_status)}; running: ${counts(current.sandboxes_by_thermal)})`,
      `users:      ${current.users_total} (${current.users_with_sandboxes} with sandboxes: ${counts(current.sandboxes_per_user)})`,
      `memory:     ${current.host_mem_available_mb} MB available of ${current.host_mem_total_mb} MB`,
      `disk:       ${current.host_disk_available_mb} MB available of ${current.host_disk_total_mb} MB (state dir)`,
      `load (1m):  ${current.host_load_1m.toFixed(2)}`,
      `events:     ${current.events_total}`,
    ];
    process.stdout.write(`${lines.join("\n")}\n`);
    if (history.length > 0) {
      process.stdout.write("\n");
      printTable(
        ["TIME", "SANDBOXES", "USERS", "MEM_AVAIL_MB", "DISK_AVAIL_MB", "LOAD"],
        history.map((h) => [
          h?.ts ?? "",
          String(h?.sandboxes_total),
          String(h?.users_total),
          String(h?.host_mem_available_mb),
          String(h?.host_disk_available_mb),
          (h?.host_load_1m ?? 0).toFixed(2),
        ]),
      );
    }
  });
}

export async function runAdminBackup(options: GlobalOptions, path: string): Promise<void> {
  const { client } = createGatewayClient(AdminService, options, { defaultTimeoutMs: 600_000 });
  // A bare file name is the server's to place (its backup_dir); a path is made absolute.
  const res = await client.backup({ path: path.includes("/") ? resolve(path) : path });
  emit(
    options,
    { path: res.path, size_bytes: Number(res.sizeBytes), schema_version: res.schemaVersion },
    () =>
      process.stdout.write(
        `backed up to ${res.path} (${res.sizeBytes} bytes, schema version ${res.schemaVersion})\n`,
      ),
  );
}
