import { AdminService } from "@bhatti/proto/v1/admin_pb";
import { metricsJson } from "@bhatti/proto/rest-json";
import { CliError } from "../cli-error.js";
import { createGatewayClient } from "../gateway-client.js";
import type { GlobalOptions } from "../global-options.js";
import { emit, printTable } from "../output.js";
import { formatDuration } from "@bhatti/runtime/format-duration";

const MB = 1024 * 1024;

const counts = (map: Record<string, number>): string =>
  Object.entries(map)
    .map(([k, v]) => `${v} ${k}`)
    .join(", ") || "none";

export async function runAdminStatus(options: GlobalOptions): Promise<void> {
  const { client } = createGatewayClient(AdminService, options);
  const res = await client.status({});
  const rows = res.services.map((s) => ({
    name: s.name,
    healthy: s.ready,
    pid: s.pid,
    uptime: formatDuration(Number(s.uptimeMs)),
    uptime_ms: Number(s.uptimeMs),
    version: s.version,
    dependencies: s.dependencies.map((d) => ({ name: d.name, ready: d.ready, detail: d.detail })),
    details: s.details,
  }));
  // The thermal service counts sandboxes per state in its health details.
  const thermalDetails = rows.find((r) => r.name === "thermal")?.details ?? {};
  const sandboxes = Object.fromEntries(
    (["hot", "warm", "cold", "unknown"] as const).map((state) => [
      state,
      Number(thermalDetails[`sandboxes_${state}`] ?? 0),
    ]),
  ) as Record<"hot" | "warm" | "cold" | "unknown", number>;
  const usage = res.usage === undefined ? undefined : metricsJson(res.usage);
  const host =
    usage === undefined
      ? null
      : {
          mem_total_mb: usage.host_mem_total_mb,
          mem_available_mb: usage.host_mem_available_mb,
          disk_total_mb: usage.host_disk_total_mb,
          disk_available_mb: usage.host_disk_available_mb,
          load_1m: usage.host_load_1m,
        };
  const images =
    res.images === undefined ? null : { count: res.images.count, total_bytes: Number(res.images.totalBytes) };
  emit(
    options,
    {
      services: rows,
      sandboxes,
      sandboxes_by_status: usage?.sandboxes_by_status ?? null,
      host,
      images,
    },
    () => {
      printTable(
        ["NAME", "HEALTHY", "PID", "UPTIME", "VERSION", "PROBLEMS"],
        rows.map((r) => [
          r.name,
          r.healthy ? "yes" : "no",
          r.pid === 0 ? "-" : String(r.pid),
          r.pid === 0 ? "-" : r.uptime,
          r.version === "" ? "-" : r.version,
          r.dependencies
            .filter((d) => !d.ready)
            .map((d) => `${d.name}: ${d.detail}`)
            .join("; "),
        ]),
      );
      const lines = [
        "",
        `sandboxes: ${sandboxes.hot} hot, ${sandboxes.warm} warm, ${sandboxes.cold} cold, ${sandboxes.unknown} unknown` +
          (usage === undefined ? "" : ` (by status: ${counts(usage.sandboxes_by_status)})`),
      ];
      if (host !== null) {
        const used = (total: number, available: number) =>
          `${total - available} MB used of ${total} MB (${available} MB available)`;
        lines.push(`memory:    ${used(host.mem_total_mb, host.mem_available_mb)}`);
        lines.push(`disk:      ${used(host.disk_total_mb, host.disk_available_mb)} (state dir)`);
      } else lines.push("memory, disk: unknown (the store did not answer)");
      lines.push(
        images === null
          ? "images:    unknown (the vmm did not answer)"
          : `images:    ${images.count} using ${Math.round(images.total_bytes / MB)} MB`,
      );
      process.stdout.write(`${lines.join("\n")}\n`);
    },
  );
  const unhealthy = rows.filter((r) => !r.healthy).map((r) => r.name);
  if (unhealthy.length > 0) {
    throw new CliError(`not healthy: ${unhealthy.join(", ")}`);
  }
}
