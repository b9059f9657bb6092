import { execFile } from "node:child_process";

export interface CommandResult {
  stdout: string;
  stderr: string;
}

/** A command that exited non-zero (or could not run); the message carries its stderr. */
export class CommandError extends Error {
  override readonly name = "CommandError";
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

export interface RunCommandOptions {
  timeoutMs?: number;
  input?: string;
  env?: NodeJS.ProcessEnv;
}

/** Runs a program (no shell) and resolves with its output, or rejects with CommandError. */
export function runCommand(
  file: string,
  args: readonly string[],
  options: RunCommandOptions = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      {
        timeout: options.timeoutMs ?? 30_000,
        killSignal: "SIGKILL",
        maxBuffer: 16 * 1024 * 1024,
        env: options.env ?? process.env,
      },
      (error, stdout, stderr) => {
        if (error) {
          const code = typeof error.code === "number" ? error.code : null;
          const why = error.killed ? "timed out" : code !== null ? `exited ${code}` : error.message;
          const detail = (stderr || stdout).trim().split("\n").slice(-8).join("\n");
          reject(
            new CommandError(
              `${file.split("/").pop()} ${args.slice(0, 3).join(" ")}: ${why}${detail ? `: ${detail}` : ""}`,
              code,
              stdout,
              stderr,
            ),
          );
          return;
        }
        resolve({ stdout, stderr });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}
