import { spawn } from "node:child_process";

/** A helper program (skopeo, umoci, tar) that exited non-zero; `stderr` is its tail. */
export class ToolError extends Error {
  override readonly name = "ToolError";
  constructor(
    readonly tool: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(`${tool} failed (${exitCode === null ? "killed" : `exit ${exitCode}`}): ${stderr}`);
  }
}

export interface ToolRunOptions {
  /** Killed (SIGKILL) when aborted: a cancelled or timed-out task leaves no helper running. */
  signal?: AbortSignal;
  timeoutMs: number;
  /** Each stdout/stderr line as it comes (progress). */
  onLine?: (line: string) => void;
  env?: NodeJS.ProcessEnv;
}

const TAIL_BYTES = 4096;

/** Runs a helper without a shell; resolves with its stdout, rejects with ToolError. */
export function runTool(file: string, args: readonly string[], options: ToolRunOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: options.env ?? process.env,
    });
    let stdout = "";
    let stderr = "";
    let partial = "";
    const lines = (chunk: string) => {
      if (!options.onLine) return;
      partial += chunk;
      const parts = partial.split(/\r?\n|\r/);
      partial = parts.pop() ?? "";
      for (const p of parts) if (p.trim() !== "") options.onLine(p);
    };
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      if (stdout.length < 16 << 20) stdout += d;
      lines(d);
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr = (stderr + d).slice(-TAIL_BYTES);
      lines(d);
    });
    const kill = () => child.kill("SIGKILL");
    const timer = setTimeout(kill, options.timeoutMs);
    options.signal?.addEventListener("abort", kill, { once: true });
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new ToolError(file, null, e.message));
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", kill);
      if (code === 0) resolve(stdout);
      else reject(new ToolError(file.split("/").pop() ?? file, code, stderr.trim()));
    });
  });
}
