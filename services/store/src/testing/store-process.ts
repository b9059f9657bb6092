import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { StoreService } from "@bhatti/proto";
import { type ServiceClient, createServiceClient } from "@bhatti/runtime";

const storeBundle = join(dirname(fileURLToPath(import.meta.url)), "../../dist/main.js");

/** A real store process (the esbuild bundle) on a socket in a temp dir, for cross-process tests. */
export interface StoreProcess {
  readonly stateDir: string;
  readonly socketPath: string;
  readonly clientConfigFile: string;
  readonly pid: number;
  readonly client: ServiceClient<typeof StoreService>["client"];
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** SIGKILL, no cleanup: simulates a crash. */
  kill(): Promise<void>;
  /** SIGTERM and wait for exit. */
  stop(): Promise<number | null>;
}

export interface StartStoreOptions {
  /** Reuse an existing state dir (restart after a crash). */
  stateDir?: string;
  extraArgs?: readonly string[];
}

/** Makes a temp dir with the test prefix the leak check looks for. */
export function makeTestDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `bhatti-test-store-${tag}-`));
}

export async function startStoreProcess(options: StartStoreOptions = {}): Promise<StoreProcess> {
  const stateDir = options.stateDir ?? makeTestDir("state");
  const socketDir = join(stateDir, "run");
  const configFile = join(stateDir, "server-config.yaml");
  writeFileSync(configFile, "");
  const clientConfigFile = join(stateDir, "client", "config.yaml");
  const args = [
    storeBundle,
    `--config=${configFile}`,
    `--state-dir=${stateDir}`,
    `--socket-dir=${socketDir}`,
    `--client-config-file=${clientConfigFile}`,
    "--log-level=debug",
    ...(options.extraArgs ?? []),
  ];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const socketPath = join(socketDir, "store.sock");
  const { client, close } = createServiceClient(StoreService, socketPath, { defaultTimeoutMs: 10_000 });
  try {
    await waitHealthy(child, client, () => output);
  } catch (e) {
    close();
    child.kill("SIGKILL");
    throw e;
  }
  return {
    stateDir,
    socketPath,
    clientConfigFile,
    pid: child.pid ?? 0,
    client,
    output: () => output,
    async kill() {
      close();
      child.kill("SIGKILL");
      await exited;
    },
    async stop() {
      close();
      child.kill("SIGTERM");
      return exited;
    },
  };
}

async function waitHealthy(
  child: ChildProcess,
  client: StoreProcess["client"],
  output: () => string,
): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`store exited with ${child.exitCode}: ${output()}`);
    try {
      const res = await client.health({}, { timeoutMs: 1000 });
      if (res.health?.ready) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`store did not become healthy: ${output()}`);
    await new Promise((ok) => setTimeout(ok, 50));
  }
}

/** Runs the store bundle expecting it to fail at start; resolves with its exit code and output. */
export async function runStoreExpectingFailure(
  stateDir: string,
): Promise<{ code: number | null; output: string }> {
  const configFile = join(stateDir, "server-config.yaml");
  writeFileSync(configFile, "");
  const child = spawn(
    process.execPath,
    [
      storeBundle,
      `--config=${configFile}`,
      `--state-dir=${stateDir}`,
      `--socket-dir=${join(stateDir, "run")}`,
      `--client-config-file=${join(stateDir, "client", "config.yaml")}`,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
  clearTimeout(timer);
  return { code, output };
}

export function removeTestDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
