import { existsSync, readFileSync, readdirSync, rmdirSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * The sandbox's cgroups on a hybrid host (platform.md §1, §B4, §B5):
 * - v1 hierarchies carry the limits. runsc creates `<v1>/<parent>/<id>` itself from the OCI
 *   spec's cgroupsPath and resources, and removes them on `runsc delete`.
 * - the v2 `unified` hierarchy carries no controllers but gives `cgroup.freeze` (a freezer
 *   without v1's stuck-in-FREEZING bug) and `cgroup.kill`. The launcher joins
 *   `unified/<parent>/<id>` before exec'ing runsc, so the sandbox and gofer inherit it.
 * Never remounts anything and never touches cgroups outside `<parent>`.
 */
export interface SandboxCgroups {
  /** The OCI `linux.cgroupsPath` for the sandbox ("/<parent>/<id>"). */
  ociPath(id: string): string;
  /** Creates `unified/<parent>/<id>`; returns its cgroup.procs path for the launcher. */
  ensureUnified(id: string): string;
  freeze(id: string, timeoutMs?: number): Promise<void>;
  thaw(id: string, timeoutMs?: number): Promise<void>;
  isFrozen(id: string): boolean;
  /** Pids in the unified cgroup (sandbox, gofer, ptrace stubs). */
  pids(id: string): number[];
  /** SIGKILLs every process of the sandbox (cgroup.kill) and waits until the cgroup is empty. */
  kill(id: string, timeoutMs?: number): Promise<void>;
  /** Removes the sandbox's cgroups in every hierarchy (they must be empty). */
  remove(id: string): Promise<void>;
  stats(id: string): CgroupStats;
  /** Ids with a cgroup under the parent in any hierarchy (for leak checks and adoption). */
  listIds(): string[];
  /** Whether the v1 memory controller accounts swap (memsw files exist: a swap limit can be set). */
  swapAccounting(): boolean;
  readonly parent: string;
}

export interface CgroupStats {
  memoryBytes: number;
  memoryLimitBytes: number;
  cpuUsageNs: number;
  tasks: number;
}

export const V1_CONTROLLERS = [
  "cpu",
  "cpuacct",
  "cpuset",
  "memory",
  "pids",
  "freezer",
  "devices",
  "blkio",
  "systemd",
] as const;

export interface SandboxCgroupsOptions {
  /** Parent cgroup name, e.g. "bhatti" (product) or "bhatti-test/<run>" (tests). */
  parent: string;
  root?: string;
}

function readNumber(path: string): number {
  try {
    const n = Number(readFileSync(path, "utf8").trim());
    return Number.isFinite(n) ? n : 0;
  } catch {
    return 0;
  }
}

export function createSandboxCgroups(options: SandboxCgroupsOptions): SandboxCgroups {
  const root = options.root ?? "/sys/fs/cgroup";
  const parent = options.parent.replace(/^\/+|\/+$/g, "");
  const unified = (id: string) => join(root, "unified", parent, id);
  const v1 = (controller: string, id: string) => join(root, controller, parent, id);

  const frozenState = (id: string): boolean | undefined => {
    try {
      const events = readFileSync(join(unified(id), "cgroup.events"), "utf8");
      return /^frozen 1$/m.test(events);
    } catch {
      return undefined;
    }
  };

  const setFrozen = async (id: string, frozen: boolean, timeoutMs: number) => {
    const dir = unified(id);
    writeFileSync(join(dir, "cgroup.freeze"), frozen ? "1" : "0");
    // Usually done within 0.1 ms; spin briefly, then poll with a short sleep.
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; ; i++) {
      if (frozenState(id) === frozen) return;
      if (Date.now() > deadline) {
        throw new Error(`cgroup ${dir} did not become ${frozen ? "frozen" : "thawed"} in ${timeoutMs} ms`);
      }
      if (i > 50) await sleep(1);
    }
  };

  const pids = (id: string): number[] => {
    try {
      return readFileSync(join(unified(id), "cgroup.procs"), "utf8")
        .split("\n")
        .filter((l) => l.length > 0)
        .map(Number);
    } catch {
      return [];
    }
  };

  return {
    parent,
    ociPath: (id) => `/${parent}/${id}`,
    ensureUnified(id) {
      const dir = unified(id);
      mkdirSync(dir, { recursive: true });
      return join(dir, "cgroup.procs");
    },
    freeze: (id, timeoutMs = 2000) => setFrozen(id, true, timeoutMs),
    thaw: (id, timeoutMs = 2000) => setFrozen(id, false, timeoutMs),
    isFrozen: (id) => frozenState(id) === true,
    pids,
    async kill(id, timeoutMs = 5000) {
      const dir = unified(id);
      if (!existsSync(dir)) return;
      if (pids(id).length === 0) return;
      writeFileSync(join(dir, "cgroup.kill"), "1");
      const deadline = Date.now() + timeoutMs;
      while (pids(id).length > 0) {
        if (Date.now() > deadline) throw new Error(`cgroup ${dir} still has processes after kill`);
        await sleep(2);
      }
    },
    async remove(id) {
      const dirs = [unified(id), ...V1_CONTROLLERS.map((c) => v1(c, id))];
      for (const dir of dirs) {
        if (!existsSync(dir)) continue;
        // A cgroup whose last task just exited can report EBUSY for a moment.
        for (let attempt = 0; ; attempt++) {
          try {
            rmdirSync(dir);
            break;
          } catch (e) {
            const code = (e as NodeJS.ErrnoException).code;
            if (code === "ENOENT") break;
            if (code !== "EBUSY" || attempt >= 100) throw e;
            await sleep(5);
          }
        }
      }
    },
    stats(id) {
      return {
        memoryBytes: readNumber(join(v1("memory", id), "memory.usage_in_bytes")),
        memoryLimitBytes: readNumber(join(v1("memory", id), "memory.limit_in_bytes")),
        cpuUsageNs: readNumber(join(v1("cpuacct", id), "cpuacct.usage")),
        tasks: readNumber(join(v1("pids", id), "pids.current")),
      };
    },
    swapAccounting: () => existsSync(join(root, "memory", "memory.memsw.limit_in_bytes")),
    listIds() {
      const ids = new Set<string>();
      for (const h of ["unified", ...V1_CONTROLLERS]) {
        const dir = join(root, h, parent);
        let names: string[] = [];
        try {
          names = readdirSync(dir, { withFileTypes: true })
            .filter((d) => d.isDirectory())
            .map((d) => d.name);
        } catch {
          continue;
        }
        for (const n of names) ids.add(n);
      }
      return [...ids];
    },
  };
}
