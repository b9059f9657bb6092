import { jsonServiceClient } from "../connect-json.js";
import type { GlobalOptions } from "../global-options.js";
import { emit, printTable } from "../output.js";
import { writeSandboxNames } from "../sandbox-name-cache.js";
import { age, sandboxJson, statusText } from "../sandbox-output.js";
import { sandboxFromJson } from "../sandbox-view.js";

/** `bhatti list`. Connect's JSON encoding: no protobuf descriptors to build for the most-run command. */
export async function runList(
  options: GlobalOptions,
  opts: { label?: Record<string, string>; output?: string },
): Promise<void> {
  const client = jsonServiceClient("bhatti.v1.SandboxService", options, 30_000);
  const res = (await client.unary("ListSandboxes", { labels: opts.label ?? {} })) as {
    sandboxes?: unknown[];
  };
  const sandboxes = (res.sandboxes ?? []).map(sandboxFromJson);
  if (Object.keys(opts.label ?? {}).length === 0) writeSandboxNames(sandboxes.map((s) => s.name));
  emit(options, sandboxes.map(sandboxJson), () => {
    if (sandboxes.length === 0) {
      process.stdout.write("no sandboxes (create one with: bhatti create --name NAME)\n");
      return;
    }
    const wide = opts.output === "wide";
    printTable(
      wide
        ? ["NAME", "ID", "STATUS", "IP", "IMAGE", "CPUS", "MEMORY", "AGE", "LABELS"]
        : ["NAME", "STATUS", "IP", "AGE"],
      sandboxes.map((s) =>
        wide
          ? [
              s.name,
              s.id,
              statusText(s),
              s.ip || "-",
              s.image,
              String(s.cpus),
              `${s.memoryMb}MB`,
              age(s),
              Object.entries(s.labels)
                .map(([k, v]) => `${k}=${v}`)
                .join(","),
            ]
          : [s.name, statusText(s), s.ip || "-", age(s)],
      ),
    );
  });
}
