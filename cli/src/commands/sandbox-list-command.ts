import type { Command } from "commander";
import { globalOptionsOf } from "../global-options.js";
import { collectKeyValue } from "../key-value-flags.js";

/** `bhatti list|ls`. */
export function registerListCommand(program: Command): void {
  program
    .command("list")
    .alias("ls")
    .description("list your sandboxes")
    .option("--label <k=v>", "only sandboxes with this label (repeatable)", collectKeyValue("--label"))
    .option("-o, --output <format>", "wide: more columns")
    .action(async (opts: { label?: Record<string, string>; output?: string }, command: Command) => {
      const { runList } = await import("./sandbox-list-action.js");
      await runList(globalOptionsOf(command), opts);
    });
}
