import { AdminService } from "@bhatti/proto/v1/admin_pb";
import { CliError } from "../cli-error.js";
import { createGatewayClient } from "../gateway-client.js";
import type { GlobalOptions } from "../global-options.js";
import { emit, printTable } from "../output.js";
import { formatDuration } from "@bhatti/runtime/format-duration";

export async function runAdminStatus(options: GlobalOptions): Promise<void> {
  const { client } = createGatewayClient(AdminService, options);
  const { services } = await client.status({});
  const rows = services.map((s) => ({
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
  emit(options, { services: rows, sandboxes }, () => {
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
    process.stdout.write(
      `\nsandboxes: ${sandboxes.hot} hot, ${sandboxes.warm} warm, ${sandboxes.cold} cold, ${sandboxes.unknown} unknown\n`,
    );
  });
  const unhealthy = rows.filter((r) => !r.healthy).map((r) => r.name);
  if (unhealthy.length > 0) {
    throw new CliError(`not healthy: ${unhealthy.join(", ")}`);
  }
}
