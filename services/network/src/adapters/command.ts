import { spawn } from "node:child_process";

/** A helper program (ip, nft) failed; `stderr` says why. */
export class CommandError extends Error {
  override readonly name = "CommandError";
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(`${command} failed (exit ${exitCode}): ${stderr.trim() || "no output"}`);
  }
}

export interface CommandResult {
  stdout: string;
  stderr: string;
  exitCode: number | null;
}

/**
 * Runs a program with `input` on stdin (batch scripts) and collects its output. One process
 * per batch: the kernel work of a whole attach goes through one or two of these.
 */
export function runCommand(file: string, args: readonly string[], input = ""): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("error", reject);
    child.once("close", (exitCode) => resolve({ stdout, stderr, exitCode }));
    child.stdin.on("error", () => undefined); // the program may exit before reading everything
    child.stdin.end(input);
  });
}

/** Like runCommand, but a non-zero exit is a CommandError. */
export async function runChecked(file: string, args: readonly string[], input = ""): Promise<string> {
  const result = await runCommand(file, args, input);
  if (result.exitCode !== 0)
    throw new CommandError([file, ...args].join(" "), result.exitCode, result.stderr);
  return result.stdout;
}
