import type { Command } from "commander";
import { commandGroup } from "../command-group.js";
import { globalOptionsOf } from "../global-options.js";

/** `bhatti file read|write|ls SANDBOX PATH`. */
export function registerFileCommands(program: Command): void {
  const file = commandGroup(program, "file", "read, write and list files in a sandbox");
  file
    .command("read")
    .description("print a file (raw bytes)")
    .argument("<sandbox>", "name or id")
    .argument("<path>", "absolute path in the sandbox")
    .option("--offset <line>", "first line (1-based)", Number)
    .option("--limit <lines>", "at most this many lines", Number)
    .option("--max-bytes <n>", "at most this many bytes", Number)
    .action(
      async (sandbox: string, path: string, opts: Record<string, number | undefined>, command: Command) => {
        const { runFileRead } = await import("./file-action.js");
        await runFileRead(globalOptionsOf(command), sandbox, path, opts);
      },
    );
  file
    .command("write")
    .description("write stdin to a file (atomic, at most 100 MB)")
    .argument("<sandbox>", "name or id")
    .argument("<path>", "absolute path in the sandbox")
    .option("--mode <octal>", "permissions", "0644")
    .action(async (sandbox: string, path: string, opts: { mode: string }, command: Command) => {
      const { runFileWrite } = await import("./file-action.js");
      await runFileWrite(globalOptionsOf(command), sandbox, path, opts.mode);
    });
  file
    .command("ls")
    .description("list a directory")
    .argument("<sandbox>", "name or id")
    .argument("[path]", "directory", "/workspace")
    .action(async (sandbox: string, path: string, _opts: unknown, command: Command) => {
      const { runFileLs } = await import("./file-action.js");
      await runFileLs(globalOptionsOf(command), sandbox, path);
    });
}
