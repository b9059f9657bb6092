import { type ChildProcess, spawn } from "node:child_process";
import type { ProcessName } from "@bhatti/runtime";
import { prefixLines } from "./line-prefixer.js";

export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** One run of one bhatti process under the supervisor. */
export interface RunningChild {
  readonly name: ProcessName;
  readonly process: ChildProcess;
  readonly startedAt: number;
  /** Resolves when the process has exited and its output is drained. */
  readonly exited: Promise<ChildExit>;
  /** The last lines it wrote to stderr, to explain a failed start. */
  readonly lastLines: readonly string[];
  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  stop(graceMs: number): Promise<ChildExit>;
}

export function describeExit(exit: ChildExit): string {
  return exit.signal !== null ? `killed by ${exit.signal}` : `exit code ${exit.code ?? "?"}`;
}

/**
 * Starts `node <script> <args>` with an IPC channel (the child shuts down if the supervisor
 * dies, see installShutdown) and its output prefixed with its name.
 */
export function startChild(
  name: ProcessName,
  script: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): RunningChild {
  const child = spawn(process.execPath, [script, ...args], {
    stdio: ["ignore", "pipe", "pipe", "ipc"],
    env,
    // Own process group: a Ctrl-C or a group kill reaches only the supervisor, which then stops
    // the children in order (gateway first, store last).
    detached: true,
  });
  const lastLines: string[] = [];
  const ignored: string[] = [];
  if (child.stdout !== null) prefixLines(child.stdout, process.stdout, name, ignored, 0);
  if (child.stderr !== null) prefixLines(child.stderr, process.stderr, name, lastLines);
  const exited = new Promise<ChildExit>((resolve) => {
    child.once("error", (e) => {
      lastLines.push(`cannot start: ${e.message}`);
      if (child.pid === undefined) resolve({ code: null, signal: null });
    });
    child.once("close", (code, signal) => resolve({ code, signal }));
  });
  return {
    name,
    process: child,
    startedAt: Date.now(),
    exited,
    lastLines,
    async stop(graceMs) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
