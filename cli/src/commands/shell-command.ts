import type { Command } from "commander";
import { globalOptionsOf } from "../global-options.js";

/** `bhatti shell NAME`: an interactive terminal; Ctrl+\ detaches, the next shell reattaches. */
export function registerShellCommand(program: Command): void {
  program
    .command("shell")
    .alias("sh")
    .description("open a terminal in a sandbox (Ctrl+\\ detaches; the session keeps running)")
    .argument("<sandbox>", "name or id")
    .option("--new", "start a new shell instead of reattaching to a detached one")
    .option("--session <id>", "attach to this session")
    .action(async (sandbox: string, opts: { new?: boolean; session?: string }, command: Command) => {
      const { runShell } = await import("./shell-action.js");
      await runShell(globalOptionsOf(command), sandbox, opts);
    });
}
