import type { Command } from "commander";
import { globalOptionsOf } from "../global-options.js";
import { collectKeyValue } from "../key-value-flags.js";

/** `bhatti exec NAME -- cmd...`: streams output; the command's exit code becomes the CLI's. */
export function registerExecCommand(program: Command): void {
  program
    .command("exec")
    .description("run a command in a sandbox (output streams as it happens; exit code passed through)")
    .argument("<sandbox>", "name or id")
    .argument("<command...>", "the command and its arguments (put -- before them)")
    .option("--timeout <sec>", "kill the command after this many seconds (default 300, max 86400)", Number)
    .option("--detach", "run in the background; prints the pid and output file")
    .option("--output-file <path>", "with --detach: where output goes")
    .option("--env <K=V>", "environment variable (repeatable)", collectKeyValue("--env"))
    .option("--cwd <dir>", "working directory")
    .option("-n, --no-stdin", "do not pass stdin through (read when it is a pipe or a file)")
    .action(async (sandbox: string, argv: string[], opts: Record<string, unknown>, command: Command) => {
      const { runExec } = await import("./exec-action.js");
      await runExec(globalOptionsOf(command), sandbox, argv, opts);
    });
}
