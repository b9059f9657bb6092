import { readFileSync } from "node:fs";
import { freeBytes } from "../../adapters/loop-disk.js";
import type { Logger } from "@bhatti/runtime";
import { EngineError } from "../../engine/engine-error.js";
import { SENTRY_OVERHEAD_MB } from "./oci-spec.js";

/**
 * Host-level admission control (finding #25): per-user quotas do not stop the host from being
 * overcommitted, and an overcommitted host lets the OOM killer pick a service, or a full disk
 * break SQLite for every tenant (#5). The vmm refuses, with `unavailable` (HTTP 503), a create
 * or restore the host cannot hold, and a checkpoint the state disk cannot hold.
 *
 * Memory: the memory limits of every sandbox holding RAM (hot, warm, or being created or
 * restored), sentry overhead included, must fit in MemTotal minus the reserve (limits are hard
 * and there is no swap, so this keeps the host out of OOM), and the new sandbox must fit in
 * MemAvailable minus the reserve (memory used by others than bhatti).
 * Disk: a create needs its whole `disk_size_mb` free above the reserve (the image is sparse; the
 * sandbox may fill it at once); a restore needs the reserve; a checkpoint needs the sandbox's
 * memory limit above it (a checkpoint is as large as the guest's memory).
 */
export interface HostAdmissionOptions {
  /** Filesystem holding sandboxes and checkpoints (the state dir). */
  stateDir: string;
  /** Memory kept for the host and the bhatti services, MiB. */
  memoryReserveMb: number;
  /** Free space kept on the state filesystem (state.db, records), MiB. */
  diskReserveMb: number;
  /** Gets the host figures behind a refusal (tenants get only what was refused). */
  logger?: Logger;
}

export interface HostAdmission {
  /**
   * Admits a sandbox about to take RAM; throws `unavailable` otherwise. The memory stays
   * counted as committed until `release` (call it once the sandbox is counted as running, or
   * failed).
   */
  admit(
    id: string,
    what: "create" | "restore",
    need: { memoryMb: number; diskMb: number },
    committedMb: number,
  ): { release(): void };
  /** Throws `unavailable` when a checkpoint of a sandbox with this memory limit does not fit. */
  checkCheckpointSpace(id: string, memoryMb: number): void;
}

const MiB = 1024 * 1024;

export function readMeminfoMb(): { totalMb: number; availableMb: number } {
  const text = readFileSync("/proc/meminfo", "utf8");
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB$`, "m").exec(text)?.[1] ?? Number.NaN);
  return { totalMb: Math.floor(kb("MemTotal") / 1024), availableMb: Math.floor(kb("MemAvailable") / 1024) };
}

export function createHostAdmission(options: HostAdmissionOptions): HostAdmission {
  const inFlight = new Map<string, number>();
  const sum = () => [...inFlight.values()].reduce((a, b) => a + b, 0);
  // The caller (a tenant, through the gateway) learns what was refused; the host's figures,
  // which tell about other tenants' use, go to the vmm's log only.
  const refuse = (message: string, detail: string): never => {
    options.logger?.warn("host admission refused", { reason: message, detail });
    throw new EngineError("unavailable", `host capacity: ${message}; retry later`);
  };
  const freeMb = () => Math.floor(freeBytes(options.stateDir) / MiB);

  return {
    admit(id, what, need, committedMb) {
      const memory = need.memoryMb + SENTRY_OVERHEAD_MB;
      const { totalMb, availableMb } = readMeminfoMb();
      const capacity = totalMb - options.memoryReserveMb;
      const committed = committedMb + sum();
      if (committed + memory > capacity) {
        refuse(
          `not enough host memory to ${what} sandbox ${id} with ${need.memoryMb} MiB`,
          `${committed} MiB committed to sandboxes, ${capacity} MiB for them (MemTotal ${totalMb} MiB minus the ${options.memoryReserveMb} MiB reserve)`,
        );
      }
      if (availableMb - options.memoryReserveMb < memory) {
        refuse(
          `not enough host memory to ${what} sandbox ${id} with ${need.memoryMb} MiB`,
          `MemAvailable ${availableMb} MiB, ${options.memoryReserveMb} MiB kept in reserve`,
        );
      }
      const free = freeMb();
      if (free - options.diskReserveMb < need.diskMb) {
        refuse(
          `not enough host disk to ${what} sandbox ${id}${need.diskMb > 0 ? ` with a ${need.diskMb} MiB disk` : ""}`,
          `${free} MiB free on the state disk, ${options.diskReserveMb} MiB kept in reserve`,
        );
      }
      inFlight.set(id, memory);
      return { release: () => void inFlight.delete(id) };
    },
    checkCheckpointSpace(id, memoryMb) {
      const free = freeMb();
      const need = memoryMb + SENTRY_OVERHEAD_MB;
      if (free - options.diskReserveMb < need) {
        refuse(
          `not enough host disk to checkpoint sandbox ${id} (up to ${need} MiB); it stays running`,
          `${free} MiB free on the state disk, ${options.diskReserveMb} MiB kept in reserve`,
        );
      }
    },
  };
}
