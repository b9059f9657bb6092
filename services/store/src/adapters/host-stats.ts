import { statfsSync } from "node:fs";
import { freemem, loadavg, totalmem } from "node:os";
import { readFileSync } from "node:fs";

export interface HostStats {
  memTotalMb: number;
  memAvailableMb: number;
  diskTotalMb: number;
  diskAvailableMb: number;
  load1m: number;
}

const MB = 1024 * 1024;

/** Host memory (MemAvailable, not MemFree: page cache counts as available) and the state disk. */
export function readHostStats(stateDir: string): HostStats {
  let memAvailable = freemem();
  try {
    const m = /^MemAvailable:\s+(\d+) kB$/m.exec(readFileSync("/proc/meminfo", "utf8"));
    if (m?.[1]) memAvailable = Number(m[1]) * 1024;
  } catch {
    // Not Linux: os.freemem() is the best available.
  }
  const fs = statfsSync(stateDir);
  return {
    memTotalMb: Math.round(totalmem() / MB),
    memAvailableMb: Math.round(memAvailable / MB),
    diskTotalMb: Math.round((fs.blocks * fs.bsize) / MB),
    diskAvailableMb: Math.round((fs.bavail * fs.bsize) / MB),
    load1m: loadavg()[0] ?? 0,
  };
}
