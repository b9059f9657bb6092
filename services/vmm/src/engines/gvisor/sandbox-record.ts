import { readFileSync, renameSync, writeFileSync } from "node:fs";
import type { SandboxStatus, ThermalState } from "../../engine/engine.js";

/**
 * What the gvisor engine persists per sandbox (`<sandbox dir>/engine.json`, mode 0600), so a
 * restarted vmm can adopt running sandboxes and restore cold ones with the same address and
 * agent token. Secrets are not in it (they live only in the boot config, which the agent
 * deletes after reading).
 */
export interface GvisorSandboxRecord {
  version: 1;
  id: string;
  name: string;
  image: string;
  imageRootfs: string;
  cpus: number;
  memoryMb: number;
  pidsLimit: number;
  userId: string;
  hostname: string;
  createdAt: number;
  token: string;
  address: string;
  gateway: string;
  /** The per-user resolver the sandbox's resolv.conf names (absent in records of older versions). */
  dnsServer?: string;
  netnsPath: string;
  status: SandboxStatus;
  thermal: ThermalState;
  thermalSince: number;
  /** How the warm state was entered ("freeze" = cgroup v2, "runsc" = runsc pause). */
  warmBy?: "freeze" | "runsc";
  /** Set while the restore circuit breaker is open. */
  restoreError?: string;
  checkpointBytes?: number;
}

export function readRecord(path: string): GvisorSandboxRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(path, "utf8")) as GvisorSandboxRecord;
    return r.version === 1 && typeof r.id === "string" ? r : undefined;
  } catch {
    return undefined;
  }
}

export function writeRecord(path: string, record: GvisorSandboxRecord): void {
  writeFileSync(`${path}.tmp`, JSON.stringify(record, null, 2), { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}
