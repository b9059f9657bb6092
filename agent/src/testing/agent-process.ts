// Starts the bundled agent as a real process on loopback (tests and benchmarks).
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The ERROR text an exec gets when the spawner died under it (tests outside the agent assert it). */
export { SPAWNER_LOST_TEXT } from "../exec/resident-spawner.js";

export const AGENT_BUNDLE = join(dirname(fileURLToPath(import.meta.url)), "../../dist/agent.js");

export interface AgentProcessOptions {
  /** Default: a random 32-hex token. "" runs without auth. */
  token?: string;
  user?: string;
  allowRoot?: boolean;
  /** Serve the sudo channel on this Unix socket (the agent must run as root). */
  sudoSocket?: string;
  workdir?: string;
  authTimeoutMs?: number;
  /** Fixed ports (default: free ones). */
  controlPort?: number;
  forwardPort?: number;
  /** Extra node flags (before the bundle). */
  nodeFlags?: string[];
  /** Extra environment for the agent (e.g. BHATTI_AGENT_SPAWNER=off). */
  env?: Readonly<Record<string, string>>;
}

export interface AgentProcess {
  child: ChildProcess;
  token: string;
  control: { host: string; port: number };
  forward: { host: string; port: number };
  /** A temp dir the test may use; removed by stop(). */
  dir: string;
  /** `dir/workspace`, world-writable: the default working directory. */
  workspace: string;
  /** Lines the agent logged on stderr so far. */
  logs: string[];
  stop(): Promise<void>;
}

export async function startAgentProcess(options: AgentProcessOptions = {}): Promise<AgentProcess> {
  if (!existsSync(AGENT_BUNDLE)) throw new Error(`${AGENT_BUNDLE} missing: run node scripts/build.mjs`);
  const dir = mkdtempSync(join(tmpdir(), "bhatti-test-agent-"));
  // Commands run as uid 1000 in some tests and must reach files below this dir.
  chmodSync(dir, 0o755);
  const token = options.token ?? randomBytes(16).toString("hex");
  const args = [
    ...(options.nodeFlags ?? []),
    AGENT_BUNDLE,
    "--listen",
    `127.0.0.1:${options.controlPort ?? 0}`,
    "--forward-listen",
    `127.0.0.1:${options.forwardPort ?? 0}`,
  ];
  if (token !== "") {
    writeFileSync(join(dir, "token"), token, { mode: 0o600 });
    args.push("--token-file", join(dir, "token"));
  }
  if (options.user !== undefined) args.push("--user", options.user);
  if (options.allowRoot === true) args.push("--allow-root");
  if (options.sudoSocket !== undefined) args.push("--sudo-socket", options.sudoSocket);
  const workspace = join(dir, "workspace");
  mkdirSync(workspace);
  chmodSync(workspace, 0o777);
  args.push("--workdir", options.workdir ?? workspace);
  if (options.authTimeoutMs !== undefined) args.push("--auth-timeout-ms", String(options.authTimeoutMs));

  const child = spawn(process.execPath, args, {
    stdio: ["ignore", "pipe", "pipe"],
    ...(options.env !== undefined ? { env: { ...process.env, ...options.env } } : {}),
  });
  const logs: string[] = [];
  child.stderr!.setEncoding("utf8").on("data", (s: string) => logs.push(...s.split("\n").filter(Boolean)));
  const ready = await new Promise<string>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`agent not ready: ${logs.join("\n")}`)), 10_000);
    child.stdout!.setEncoding("utf8").on("data", (s: string) => {
      out += s;
      const line = /agent: ready (.*)\n/.exec(out);
      if (line !== null) {
        clearTimeout(timer);
        resolve(line[1]!);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`agent exited ${code}: ${logs.join("\n")}`));
    });
  });
  const addr = (key: string) => {
    const m = new RegExp(`${key}=([^ ]+):(\\d+)`).exec(ready)!;
    return { host: m[1]!, port: Number(m[2]) };
  };
  return {
    child,
    token,
    control: addr("control"),
    forward: addr("forward"),
    dir,
    workspace,
    logs,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 3_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
