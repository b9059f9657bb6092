import { randomBytes } from "node:crypto";
import {
  type Dirent,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  rmdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { execFileSync } from "node:child_process";
import { createAgentClient } from "@bhatti/agent-client";
import {
  createAgentInit,
  createDirectDialer,
  createLocalNetnsNetwork,
  createNetnsDialer,
  loopDevicesBackedBy,
  mountedPaths,
} from "@bhatti/service-vmm/adapters";
import { createGvisorEngine, type GvisorEngineOptions } from "@bhatti/service-vmm/gvisor";
import { buildAgentPackage } from "./agent-package.js";
import { type EngineFactory, type EngineHarness, usedSandboxIds } from "./engine-factory.js";

export const RUNSC_PATH = process.env["BHATTI_RUNSC_PATH"] ?? "/usr/local/lib/bhatti/runsc";
export const RUNSC_PLATFORM = (process.env["BHATTI_RUNSC_PLATFORM"] ?? "ptrace") as "ptrace" | "systrap";

/** Builds the busybox test image into `imagesDir` (fast, 2 MB). */
export function buildTestImage(imagesDir: string): void {
  const stateDir = join(imagesDir, "..");
  const script = fileURLToPath(new URL("../../images/busybox/build.sh", import.meta.url));
  execFileSync(script, ["--state-dir", stateDir], { stdio: "inherit" });
}

/** Where install.sh builds the Debian 12 image (images/minimal/build.sh). */
const INSTALLED_DISTRO_IMAGE = "/var/lib/bhatti/images/minimal";

export interface GvisorTestEnv {
  stateDir: string;
  options: GvisorEngineOptions;
  hostNetnsPath: string;
  runId: string;
  teardown(): Promise<void>;
}

/**
 * A self-contained gvisor environment under /tmp/bhatti-test-…: its own state dir and runsc
 * root, the busybox image, the agent package, a stand-in host netns `bt-h<run>` with a bridge,
 * and cgroups under `bhatti-test/<run>`.
 */
export async function createGvisorTestEnv(): Promise<GvisorTestEnv> {
  const runId = randomBytes(3).toString("hex");
  const adopted = adoptedHostNetns();
  const stateDir = mkdtempSync(join(tmpdir(), "bhatti-test-engine-"));
  buildTestImage(join(stateDir, "images"));
  // The Debian image install.sh builds, shared read-only (it is only ever an overlay lower dir).
  if (existsSync(join(INSTALLED_DISTRO_IMAGE, "image.json"))) {
    symlinkSync(INSTALLED_DISTRO_IMAGE, join(stateDir, "images", "minimal"));
  }
  const packageDir = buildAgentPackage(join(stateDir, "agent"));
  const network = createLocalNetnsNetwork({
    hostNetns: adopted ?? `bt-h${runId}`,
    keepHostNetns: adopted !== undefined,
    bridge: `btbr${runId}`,
    subnet: `10.252.${Number.parseInt(runId.slice(0, 2), 16)}`,
    prefix: "bt",
    stateFile: join(stateDir, "local-network.json"),
  });
  await network.setup();
  // Inside the stand-in host netns already (a bench's client, see in-host-netns.ts): plain TCP,
  // as the product's own clients on a host; otherwise through the relay into it.
  const dialer =
    adopted !== undefined ? createDirectDialer() : await createNetnsDialer(network.hostNetnsPath);
  const options: GvisorEngineOptions = {
    stateDir,
    runscPath: RUNSC_PATH,
    platform: RUNSC_PLATFORM,
    cgroupParent: `bhatti-test/${runId}`,
    network,
    dialer,
    init: createAgentInit(packageDir),
  };
  return {
    stateDir,
    options,
    hostNetnsPath: network.hostNetnsPath,
    runId,
    async teardown() {
      // Last resort for a run that failed half-way (or a product left running by a harness):
      // whatever is still in this run's cgroups — sandboxes, their launchers — is killed first.
      await killRunCgroup(runId);
      await dialer.close();
      await network.teardown();
      for (const h of readdirSync("/sys/fs/cgroup")) {
        removeCgroupTree(join("/sys/fs/cgroup", h, "bhatti-test", runId));
        try {
          // The shared parent goes with the last run using it; EBUSY means another suite still is.
          rmdirSync(join("/sys/fs/cgroup", h, "bhatti-test"));
        } catch {
          // absent or still in use
        }
      }
      for (const m of mountedPaths()) {
        if (m.startsWith(stateDir)) execFileSync("umount", ["-l", m], { stdio: "ignore" });
      }
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/**
 * The stand-in host netns this process was started inside (`BHATTI_TEST_HOST_NETNS`, set by
 * `runInsideHostNetns`), checked to be the namespace the process is really in.
 */
function adoptedHostNetns(): string | undefined {
  const name = process.env["BHATTI_TEST_HOST_NETNS"];
  if (name === undefined || name === "") return undefined;
  const inode = (path: string) => statSync(path).ino;
  if (inode(`/run/netns/${name}`) !== inode("/proc/self/ns/net")) {
    throw new Error(`BHATTI_TEST_HOST_NETNS=${name}, but this process is not in that network namespace`);
  }
  return name;
}

/** Kills every process under `bhatti-test/<run>` (v2 `cgroup.kill` covers the whole subtree). */
async function killRunCgroup(runId: string): Promise<void> {
  const dir = join("/sys/fs/cgroup/unified/bhatti-test", runId);
  if (!existsSync(dir)) return;
  try {
    writeFileSync(join(dir, "cgroup.kill"), "1");
  } catch {
    return;
  }
  for (let i = 0; i < 40; i++) {
    if (/populated 0/.test(readFileSync(join(dir, "cgroup.events"), "utf8"))) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Removes a cgroup directory and its child cgroups, deepest first; a busy one stays (the leak check reports it). */
function removeCgroupTree(dir: string): void {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) removeCgroupTree(join(dir, e.name));
  try {
    rmdirSync(dir);
  } catch {
    // busy or gone
  }
}

/** What a gvisor engine may leave behind: runsc containers, netns, veths, cgroups, mounts, dirs, loop devices. */
export async function gvisorLeaks(env: GvisorTestEnv): Promise<Record<string, string[]>> {
  const runscRoot = join(env.stateDir, "runsc");
  const runsc = execFileSync(RUNSC_PATH, [`--root=${runscRoot}`, "list", "--quiet"], { encoding: "utf8" })
    .split("\n")
    .filter((l) => l.trim() !== "");
  // Only namespaces of sandboxes this run created (other suites use the bt- prefix too).
  const netns = readdirSync("/run/netns").filter((n) => usedSandboxIds.has(n.slice(3)));
  const veths = execFileSync(
    "ip",
    ["-n", basename(env.hostNetnsPath), "-o", "link", "show", "type", "veth"],
    {
      encoding: "utf8",
    },
  )
    .split("\n")
    .filter((l) => l.trim() !== "");
  const cgroups: string[] = [];
  for (const h of readdirSync("/sys/fs/cgroup")) {
    const dir = join("/sys/fs/cgroup", h, "bhatti-test", env.runId);
    try {
      for (const d of readdirSync(dir, { withFileTypes: true }))
        if (d.isDirectory()) cgroups.push(`${h}/${d.name}`);
    } catch {
      // hierarchy without our parent
    }
  }
  // The engine's read-only bind of the agent package is engine state, kept for later creates
  // and restores (teardown removes it); sandbox mounts are what must not outlive a sandbox.
  const mounts = [...mountedPaths()].filter(
    (m) => m.startsWith(env.stateDir) && m !== join(env.stateDir, "agent-ro"),
  );
  let dirs: string[] = [];
  try {
    dirs = readdirSync(join(env.stateDir, "sandboxes"));
  } catch {
    dirs = [];
  }
  const processes = execFileSync("ps", ["-eo", "pid,args"], { encoding: "utf8" })
    .split("\n")
    .filter((l) => l.includes(env.stateDir) && !l.includes("ps -eo"));
  // Sandbox disks are loop-mounted image files; an unmount that did not free its device leaks it.
  // The kernel frees a device asynchronously after the unmount: wait for that, bounded.
  const loopPrefix = join(env.stateDir, "sandboxes");
  for (let i = 0; i < 300 && loopDevicesBackedBy(loopPrefix).length > 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const loops = loopDevicesBackedBy(loopPrefix);
  return { runsc, netns, veths, cgroups, mounts, dirs, processes, loops };
}

export const gvisorFactory: EngineFactory = {
  name: "gvisor",
  unavailable() {
    if (process.getuid?.() !== 0) return "needs root";
    if (!existsSync(RUNSC_PATH)) return `runsc not installed at ${RUNSC_PATH} (scripts/install-runsc.sh)`;
    if (!existsSync("/usr/bin/tini")) return "tini not installed (apt-get install tini)";
    return undefined;
  },
  async create(): Promise<EngineHarness> {
    const env = await createGvisorTestEnv();
    const engine = createGvisorEngine(env.options);
    const reopened: { close(): Promise<void> }[] = [];
    return {
      engine,
      image: "busybox",
      distroImage: existsSync(join(env.stateDir, "images", "minimal", "image.json")) ? "minimal" : undefined,
      async agent(id, options = {}) {
        const ep = engine.agentEndpoint(id);
        return createAgentClient({
          control: await env.options.dialer.endpoint(ep.host, ep.controlPort),
          forward: await env.options.dialer.endpoint(ep.host, ep.forwardPort),
          token: ep.token,
          pool: options.pool === true ? { size: 2, idleMs: 60_000 } : false,
        });
      },
      async reopen() {
        const e = createGvisorEngine(env.options);
        reopened.push(e);
        return e;
      },
      leaks: () => gvisorLeaks(env),
      corruptSnapshot(id) {
        const img = join(env.stateDir, "sandboxes", id, "checkpoint", "checkpoint.img");
        renameSync(img, `${img}.saved`);
        writeFileSync(img, "not a checkpoint");
        return () => renameSync(`${img}.saved`, img);
      },
      async dispose() {
        for (const s of engine.list()) await engine.destroy(s.id).catch(() => undefined);
        await engine.close();
        for (const e of reopened) await e.close();
        await env.teardown();
      },
    };
  },
};
