import type { Command } from "commander";
import { globalOptionsOf } from "../global-options.js";

/** `bhatti version`: the CLI's version, the Node running it and whether an update is available. */
export function registerVersionCommand(program: Command): void {
  program
    .command("version")
    .description("print the bhatti version and whether an update is available (git fetch)")
    .option("--offline", "only the version: no update check")
    .action(async (options: { offline?: boolean }, command: Command) => {
      const { printVersion, printVersionAndUpdate } = await import("./version-action.js");
      if (options.offline === true) printVersion(globalOptionsOf(command));
      else await printVersionAndUpdate(globalOptionsOf(command));
    });
}
