import type { MessageInitShape } from "@bufbuild/protobuf";
import type { DependencyHealth, ServiceHealthSchema } from "@bhatti/proto";
import { BHATTI_VERSION } from "./version.js";

const startedAt = Date.now();

export type DependencyStatus = Pick<DependencyHealth, "name" | "ready" | "detail">;

/** This process's health, ready only if every dependency is. */
export function processHealth(
  name: string,
  dependencies: readonly DependencyStatus[] = [],
  details: Record<string, string> = {},
): MessageInitShape<typeof ServiceHealthSchema> {
  return {
    name,
    version: BHATTI_VERSION,
    pid: process.pid,
    uptimeMs: BigInt(Date.now() - startedAt),
    ready: dependencies.every((d) => d.ready),
    dependencies: dependencies.map((d) => ({ ...d })),
    details,
  };
}
