import { spawn } from "node:child_process";
import { constants } from "node:os";
import type { SudoCommand } from "./sudo-request.js";

/**
 * A caller that already is root needs no agent (and must not depend on one: scripts run by
 * root exec call sudo too). The command inherits our stdio; signals meant for it are passed
 * on. Resolves with its exit code, 128 + n for a signal.
 */
export function runLocally(command: SudoCommand): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command.argv[0]!, command.argv.slice(1), {
      cwd: command.cwd,
      env: command.env,
      stdio: "inherit",
    });
    const forward = (signal: NodeJS.Signals) => {
      try {
        child.kill(signal);
      } catch {
        // Already gone.
      }
    };
    const signals: NodeJS.Signals[] = ["SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2"];
    // ^C and ^\ reach the whole foreground group, the command included: ignore our copy.
    const ignore = () => {};
    process.on("SIGINT", ignore);
    process.on("SIGQUIT", ignore);
    for (const s of signals) process.on(s, forward);
    const cleanup = () => {
      process.off("SIGINT", ignore);
      process.off("SIGQUIT", ignore);
      for (const s of signals) process.off(s, forward);
    };
    child.once("error", (err) => {
      cleanup();
      reject(err);
    });
    child.once("exit", (code, signal) => {
      cleanup();
      if (signal !== null) resolve(128 + ((constants.signals as Record<string, number>)[signal] ?? 0));
      else resolve(code ?? 1);
    });
  });
}
