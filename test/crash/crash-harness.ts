import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type SandboxRecord, StoreService, VmmService, thermalName, vmmStatusName } from "@bhatti/proto";
import { type ServiceClient, createServiceClient } from "@bhatti/runtime";
import { mountedPaths } from "@bhatti/service-vmm/adapters";
import { RUNSC_PATH } from "../engine-conformance/gvisor-factory.js";
import { type HttpResult, type Product, startProduct } from "../thermal/product-harness.js";

/** The processes of `bhatti serve` that carry crash points, and the bundle that names each child. */
export const BUNDLES = {
  gateway: "gateway/dist",
  vmm: "services/vmm/dist",
  store: "services/store/dist",
  thermal: "services/thermal/dist",
} as const;
export type CrashProcess = keyof typeof BUNDLES;

/**
 * The whole product with a set of crash points compiled into its environment, each one disarmed
 * until the test arms it: `BHATTI_CRASH_ONCE_DIR` holds one marker file per point that has
 * "already fired", so a point fires only while its marker is absent, and only once. That lets
 * one product instance walk through every point of a process column, one operation at a time.
 */
export interface CrashProduct {
  readonly product: Product;
  readonly store: ServiceClient<typeof StoreService>;
  /** Arms one point (it fires the next time execution reaches it). */
  arm(point: string): void;
  fired(point: string): boolean;
  /** Pid of a child right now. */
  pid(process: CrashProcess): number | undefined;
  /**
   * Waits until `point` fired, the process came back with a new pid and the product answers
   * again (gateway /health, thermal Health).
   */
  waitRestarted(process: CrashProcess, point: string, oldPid: number): Promise<void>;
  /** An HTTP call that may be cut off by the crash it provokes: resolves to the result or the error. */
  attempt(method: string, path: string, body?: unknown): Promise<HttpResult | Error>;
  /**
   * Waits until rows and engine state agree (see `consistencyProblems`) and returns the rows;
   * throws with the remaining problems when they never do.
   */
  waitConsistent(timeoutMs?: number): Promise<SandboxRecord[]>;
  /**
   * Waits until the product's output contains `text`. A process logs after it acted, and its
   * output reaches the test through serve's pipe, so a log line can trail the state it reports.
   */
  waitForOutput(text: string, timeoutMs?: number): Promise<void>;
  /** Every sandbox id the test saw (for leak checks of ids that must be gone). */
  readonly seen: Set<string>;
  dispose(): Promise<void>;
}

export async function startCrashProduct(options: {
  points: readonly string[];
  flags?: readonly string[];
}): Promise<CrashProduct> {
  // The marker dir must exist before serve starts; it lives in a test-named temp dir.
  const onceDir = join("/tmp", `bhatti-test-crash-${process.pid}-${Date.now().toString(36)}`);
  mkdirSync(onceDir, { recursive: true });
  for (const p of options.points) writeFileSync(join(onceDir, p), "");
  let product: Product;
  try {
    product = await startProduct({
      flags: ["--vmm-orphan-grace=5s", "--thermal-warm-after=10m", ...(options.flags ?? [])],
      env: { BHATTI_CRASH_AT: options.points.join(","), BHATTI_CRASH_ONCE_DIR: onceDir },
    });
  } catch (e) {
    rmSync(onceDir, { recursive: true, force: true });
    throw e;
  }
  const store = createServiceClient(StoreService, join(product.socketDir, "store.sock"), {
    defaultTimeoutMs: 10_000,
  });
  const vmm = createServiceClient(VmmService, join(product.socketDir, "vmm.sock"), {
    defaultTimeoutMs: 10_000,
  });
  const seen = new Set<string>();
  const env = product.env;
  const sandboxesDir = join(env.stateDir, "sandboxes");
  const hostNetns = `bt-h${env.runId}`;

  const rows = async () => {
    const list = (await store.client.listSandboxes({ anyUser: true })).sandboxes;
    for (const r of list) seen.add(r.id);
    return list;
  };

  /** Everything that must agree, described as a list of problems (empty = consistent). */
  const consistencyProblems = async (): Promise<{ problems: string[]; rows: SandboxRecord[] }> => {
    const problems: string[] = [];
    let list: SandboxRecord[];
    try {
      list = await rows();
    } catch (e) {
      return { problems: [`store unreachable: ${(e as Error).message}`], rows: [] };
    }
    const dirs = existsSync(sandboxesDir) ? readdirSync(sandboxesDir).filter((d) => !d.startsWith(".")) : [];
    for (const d of dirs) seen.add(d);
    const records = new Map<string, { status: string; thermal: string; address: string }>();
    for (const d of dirs) {
      try {
        records.set(d, JSON.parse(readFileSync(join(sandboxesDir, d, "engine.json"), "utf8")));
      } catch {
        problems.push(`${d}: directory without a readable engine.json`);
      }
    }
    // Status and thermal state from the vmm itself: its record on disk may lag (a thaw and a
    // restore write them in memory only; adoption derives them from runsc and the cgroup).
    try {
      const live = (await vmm.client.listSandboxes({ userId: "" }, { timeoutMs: 2_000 })).sandboxes;
      for (const sb of live) {
        const rec = records.get(sb.id);
        if (rec === undefined) continue;
        rec.status = vmmStatusName(sb.status) ?? "?";
        rec.thermal = thermalName(sb.thermal) ?? "?";
      }
    } catch (e) {
      return { problems: [`vmm unreachable: ${(e as Error).message}`], rows: [] };
    }
    if (existsSync(join(sandboxesDir, ".quarantine"))) problems.push("something was quarantined");
    const rowIds = new Set(list.map((r) => r.id));
    for (const r of list) {
      if (r.status !== "running" && r.status !== "stopped") problems.push(`${r.id}: row is ${r.status}`);
      const rec = records.get(r.id);
      if (rec === undefined) {
        problems.push(`${r.id}: row without an engine sandbox`);
        continue;
      }
      if (rec.status !== r.status) problems.push(`${r.id}: row ${r.status}, engine ${rec.status}`);
      if (rec.address !== r.ip) problems.push(`${r.id}: row ip ${r.ip}, engine ${rec.address}`);
    }
    for (const d of dirs) if (!rowIds.has(d)) problems.push(`${d}: engine sandbox without a row`);
    // Network: the vmm's address book, the veths on the bridge and the sandbox namespaces.
    let book: Record<string, string> = {};
    try {
      book = JSON.parse(readFileSync(join(env.stateDir, "local-network.json"), "utf8"));
    } catch {
      book = {};
    }
    for (const id of Object.keys(book)) {
      if (!dirs.includes(id)) problems.push(`${id}: address ${book[id]} held by no sandbox`);
    }
    for (const [id, rec] of records) {
      if (book[id] !== rec.address)
        problems.push(`${id}: address book says ${book[id]}, record ${rec.address}`);
    }
    const veths = execFileSync("ip", ["-n", hostNetns, "-o", "link", "show", "type", "veth"], {
      encoding: "utf8",
    })
      .split("\n")
      .flatMap((l) => /^\d+: (bt[0-9a-f]{12})[@:]/.exec(l)?.[1] ?? []);
    const expectedVeths = new Set(dirs.map((d) => `bt${d.slice(0, 12)}`));
    for (const v of veths) if (!expectedVeths.has(v)) problems.push(`veth ${v} of no sandbox`);
    for (const v of expectedVeths) if (!veths.includes(v)) problems.push(`veth ${v} missing`);
    const netns = new Set(readdirSync("/run/netns"));
    for (const id of seen) {
      const has = netns.has(`bt-${id}`);
      if (has !== dirs.includes(id)) problems.push(`${id}: netns ${has ? "left behind" : "missing"}`);
    }
    // Processes: runsc containers exactly for the sandboxes that are not cold, mounts likewise.
    const runsc = execFileSync(RUNSC_PATH, [`--root=${join(env.stateDir, "runsc")}`, "list", "--quiet"], {
      encoding: "utf8",
    })
      .split("\n")
      .filter((l) => l.trim() !== "");
    const live = [...records].filter(([, r]) => r.thermal !== "cold").map(([id]) => id);
    for (const id of runsc)
      if (!live.includes(id)) problems.push(`${id}: runsc container of no live sandbox`);
    for (const id of live)
      if (!runsc.includes(id)) problems.push(`${id}: live sandbox without a runsc container`);
    const mounts = [...mountedPaths()].filter((m) => m.startsWith(sandboxesDir));
    for (const m of mounts) {
      const id = m.slice(sandboxesDir.length + 1).split("/")[0] ?? "";
      if (!live.includes(id)) problems.push(`${m}: mount of no live sandbox`);
    }
    for (const h of readdirSync("/sys/fs/cgroup")) {
      const dir = join("/sys/fs/cgroup", h, env.options.cgroupParent);
      let ids: string[] = [];
      try {
        ids = readdirSync(dir, { withFileTypes: true })
          .filter((e) => e.isDirectory())
          .map((e) => e.name);
      } catch {
        continue;
      }
      for (const id of ids) if (!dirs.includes(id)) problems.push(`cgroup ${h}/${id} of no sandbox`);
    }
    return { problems, rows: list };
  };

  const crash: CrashProduct = {
    product,
    store,
    seen,
    arm(point) {
      if (!options.points.includes(point)) throw new Error(`${point} is not compiled into this product`);
      rmSync(join(onceDir, point), { force: true });
    },
    fired: (point) => existsSync(join(onceDir, point)),
    pid: (p) => product.childPid(BUNDLES[p]),
    async waitRestarted(p, point, oldPid) {
      const deadline = Date.now() + 90_000;
      for (;;) {
        const pid = crash.fired(point) ? crash.pid(p) : undefined;
        if (pid !== undefined && pid !== oldPid) {
          try {
            const [gw, th, st, vm] = await Promise.race([
              new Promise<never>((_, reject) => setTimeout(() => reject(new Error("health timeout")), 5_000)),
              Promise.all([
                product.http("GET", "/health"),
                product.thermal().client.health({}, { timeoutMs: 2_000 }),
                store.client.health({}, { timeoutMs: 2_000 }),
                vmm.client.health({}, { timeoutMs: 2_000 }),
              ]),
            ]);
            if (
              gw.status === 200 &&
              th.health?.ready === true &&
              st.health?.ready === true &&
              vm.health?.ready === true
            )
              return;
          } catch {
            // still coming up
          }
        }
        if (Date.now() > deadline) {
          throw new Error(
            `${p} did not restart after ${point} (fired: ${crash.fired(point)}, pid ${crash.pid(p)})\n${product.output().slice(-3000)}`,
          );
        }
        await sleep(100);
      }
    },
    async attempt(method, path, body) {
      try {
        return await product.http(method, path, body === undefined ? {} : { body });
      } catch (e) {
        return e as Error;
      }
    },
    async waitConsistent(timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const { problems, rows: list } = await consistencyProblems();
        if (problems.length === 0) return list;
        if (Date.now() > deadline) {
          throw new Error(`never consistent:\n${problems.join("\n")}\n${product.output().slice(-4000)}`);
        }
        await sleep(250);
      }
    },
    async waitForOutput(text, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (!product.output().includes(text)) {
        if (Date.now() > deadline) {
          throw new Error(`the output never contained ${text}:\n${product.output().slice(-4000)}`);
        }
        await sleep(100);
      }
    },
    async dispose() {
      try {
        store.close();
        vmm.close();
        // For a failed run: the product's whole output next to the test's own.
        const logTo = process.env["BHATTI_CRASH_LOG"];
        if (logTo !== undefined) writeFileSync(logTo, product.output(), { flag: "a" });
        await product.dispose();
      } finally {
        rmSync(onceDir, { recursive: true, force: true });
      }
    },
  };
  return crash;
}
