import { execFile, spawn } from "node:child_process";
import { existsSync, openSync, readFileSync, readdirSync, readlinkSync, realpathSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

// Restarting the bhatti processes onto a new release without touching the sandboxes: the vmm
// leaves sandboxes running when it stops (shutdown_policy "leave"; KillMode=process under
// systemd) and adopts them when it starts again.

/** A running `bhatti serve`, as the kernel records it: enough to start it again the same way. */
export interface ServeProcess {
  pid: number;
  argv: string[];
  env: Record<string, string>;
  cwd: string;
}

function nulSplit(text: string): string[] {
  return text.split("\0").filter((s) => s !== "");
}

/** Every `bhatti serve` whose CLI bundle lives under `root` (the release being replaced). */
export function findServeProcesses(root: string): ServeProcess[] {
  const found: ServeProcess[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = nulSplit(readFileSync(`/proc/${entry}/cmdline`, "utf8"));
      const at = argv.findIndex((a) => a.endsWith("cli/dist/bhatti.mjs"));
      if (at === -1 || argv[at + 1] !== "serve") continue;
      const script = argv[at] ?? "";
      const cwd = readlinkSync(`/proc/${entry}/cwd`);
      const real = realpathSync(script.startsWith("/") ? script : `${cwd}/${script}`);
      if (!real.startsWith(`${root}/`)) continue;
      const env = Object.fromEntries(
        nulSplit(readFileSync(`/proc/${entry}/environ`, "utf8")).map((kv) => {
          const eq = kv.indexOf("=");
          return [kv.slice(0, eq), kv.slice(eq + 1)];
        }),
      );
      found.push({ pid: Number(entry), argv, env, cwd });
    } catch {
      // Exited meanwhile, or not ours to read.
    }
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM to `pid` (a `bhatti serve`: its processes exit, sandboxes stay); resolves once it is gone. */
export async function stopProcess(pid: number): Promise<void> {
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const deadline = Date.now() + 180_000;
  while (alive(pid)) {
    if (Date.now() > deadline) throw new Error(`bhatti serve (pid ${pid}) did not stop within 180 s`);
    await sleep(100);
  }
}

/**
 * Starts `serve` again with the same command line, environment and directory, detached, its
 * output appended to `logFile`. The command line names the bundle through the install link, so
 * the new serve runs whatever release the link points at now.
 */
export function startServe(serve: ServeProcess, logFile: string): number {
  const [file, ...args] = serve.argv;
  const out = openSync(logFile, "a");
  const child = spawn(file ?? process.execPath, args, {
    cwd: existsSync(serve.cwd) ? serve.cwd : "/",
    env: serve.env,
    detached: true,
    stdio: ["ignore", out, out],
  });
  child.unref();
  if (child.pid === undefined) throw new Error("could not start bhatti serve again");
  return child.pid;
}

/** Whether the systemd units are running (then systemd restarts them). */
export function systemdActive(): Promise<boolean> {
  if (!existsSync("/run/systemd/system")) return Promise.resolve(false);
  return new Promise((resolve) => {
    execFile("systemctl", ["is-active", "--quiet", "bhatti.target"], (error) => resolve(error === null));
  });
}

export function restartSystemd(): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile("systemctl", ["restart", "bhatti.target"], { timeout: 300_000 }, (error, _out, stderr) =>
      error === null
        ? resolve()
        : reject(new Error(`systemctl restart bhatti.target: ${stderr || error.message}`)),
    );
  });
}

/** Polls the gateway's /health until it answers 200 (true) or `timeoutMs` passes (false). */
export async function waitForGateway(url: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${url.replace(/\/+$/, "")}/health`, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) return true;
    } catch {
      // Not up yet.
    }
    await sleep(250);
  }
  return false;
}
