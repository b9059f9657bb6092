import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { type Dirent, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

export const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
export const bhattiBin = join(repoRoot, "cli/dist/bhatti.mjs");

/** A temp dir named so the leak check recognises it. */
export function makeTestDir(): string {
  return mkdtempSync("/tmp/bhatti-test-");
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const address = server.address();
  await new Promise<void>((ok) => server.close(() => ok()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 30_000,
): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bhattiBin, ...args],
      { env: { ...process.env, ...env }, timeout: timeoutMs },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/**
 * True while the process runs. A zombie has exited (it only waits for its new parent, PID 1
 * after its supervisor was SIGKILLed, to reap it), so it counts as gone.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ..."; comm may hold spaces or parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Pids of every process whose command line mentions `needle` (children of a test's serve). */
export function pidsMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(needle)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/**
 * Host-visible names of a test's `bhatti serve` (it runs in the root netns): its own cgroup
 * parent, nft tables, device and netns prefixes and address pool, never the product defaults,
 * so that a real server on the same machine is neither touched nor reported as a leak.
 */
export interface TestNames {
  readonly runId: string;
  readonly flags: readonly string[];
}

export function testNames(): TestNames {
  const bytes = randomBytes(3);
  const runId = bytes.toString("hex");
  return {
    runId,
    flags: [
      `--cgroup-parent=bhatti-test/serve-${runId}`,
      `--network-nft-table=bt_${runId}`,
      "--network-link-prefix=bt",
      `--network-netns-prefix=bt-${runId}-`,
      // One of 16 /20s in 10.250.0.0/16: not the product's 10.201.0.0/16.
      `--network-pool=10.250.${16 * ((bytes[0] ?? 0) % 16)}.0/20`,
    ],
  };
}

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
    // busy (the leak check reports it) or gone
  }
}

/** Removes what a stopped test serve leaves by design: its nft tables and its cgroup parent. */
export async function removeTestNames(names: TestNames): Promise<void> {
  for (const family of ["inet", "bridge"]) {
    await new Promise<void>((ok) =>
      execFile("nft", ["delete", "table", family, `bt_${names.runId}`], () => ok()),
    );
  }
  let hierarchies: string[] = [];
  try {
    hierarchies = readdirSync("/sys/fs/cgroup");
  } catch {
    return;
  }
  for (const h of ["", ...hierarchies]) {
    removeCgroupTree(join("/sys/fs/cgroup", h, "bhatti-test", `serve-${names.runId}`));
    try {
      // The shared parent goes with the last run using it.
      rmdirSync(join("/sys/fs/cgroup", h, "bhatti-test"));
    } catch {
      // absent or still in use
    }
  }
}

export interface ServeInstance {
  readonly process: ChildProcess;
  readonly dir: string;
  readonly socketDir: string;
  readonly names: TestNames;
  readonly port: number;
  readonly url: string;
  /** Env that points the CLI at this instance and its admin key. */
  readonly cliEnv: NodeJS.ProcessEnv;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface ServeOptions {
  dir: string;
  port?: number;
  extraArgs?: readonly string[];
}

/** Starts `bhatti serve` with temp dirs, a free port and a temp client config. */
export async function startServe(options: ServeOptions): Promise<ServeInstance> {
  const port = options.port ?? (await freePort());
  const socketDir = join(options.dir, "s");
  const clientConfig = join(options.dir, "client.yaml");
  const names = testNames();
  const child = spawn(
    process.execPath,
    [
      bhattiBin,
      "serve",
      `--socket-dir=${socketDir}`,
      `--state-dir=${join(options.dir, "state")}`,
      `--listen=127.0.0.1:${port}`,
      `--client-config-file=${clientConfig}`,
      "--log-level=info",
      ...names.flags,
      ...(options.extraArgs ?? []),
    ],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, BHATTI_CLIENT_CONFIG: clientConfig } },
  );
  let output = "";
  child.stdout?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((ok) =>
    child.once("exit", (code, signal) => ok({ code, signal })),
  );
  const url = `http://127.0.0.1:${port}`;
  return {
    process: child,
    dir: options.dir,
    socketDir,
    names,
    port,
    url,
    cliEnv: { BHATTI_CLIENT_CONFIG: clientConfig, BHATTI_URL: url },
    output: () => output,
    exited,
  };
}

export interface StatusEntry {
  name: string;
  healthy: boolean;
  pid: number;
  uptime: string;
  version: string;
}

/** `bhatti admin status --json`, or undefined while it fails. */
export async function adminStatus(instance: ServeInstance): Promise<StatusEntry[] | undefined> {
  const r = await runCli(["admin", "status", "--json", "--url", instance.url], instance.cliEnv, 10_000);
  if (r.stdout.trim() === "") return undefined;
  try {
    return (JSON.parse(r.stdout) as { services: StatusEntry[] }).services;
  } catch {
    return undefined;
  }
}

export async function waitAllHealthy(instance: ServeInstance, timeoutMs = 45_000): Promise<StatusEntry[]> {
  return waitFor(
    "all five processes healthy",
    async () => {
      // A supervisor that gave up (a child could not start) fails the test at once, with its output.
      if (instance.process.exitCode !== null || instance.process.signalCode !== null) {
        throw new Error(
          `bhatti serve exited (${instance.process.exitCode ?? instance.process.signalCode}):\n${instance.output()}`,
        );
      }
      const services = await adminStatus(instance);
      return services !== undefined && services.length === 5 && services.every((s) => s.healthy)
        ? services
        : undefined;
    },
    timeoutMs,
    200,
  );
}

/** Ends a test's serve and anything it left, whatever state the test stopped in. */
export async function cleanupServe(dir: string, instances: readonly ServeInstance[]): Promise<void> {
  for (const i of instances)
    if (i.process.exitCode === null && i.process.signalCode === null) i.process.kill("SIGTERM");
  await Promise.race([Promise.all(instances.map((i) => i.exited)), sleep(15_000)]);
  for (const pid of pidsMentioning(dir)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  await waitFor(
    "test processes to exit",
    async () => (pidsMentioning(dir).length === 0 ? true : undefined),
    10_000,
  );
  for (const i of instances) await removeTestNames(i.names);
  rmSync(dir, { recursive: true, force: true });
}
