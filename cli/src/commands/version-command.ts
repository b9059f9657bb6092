import type { Command } from "commander";
import { globalOptionsOf } from "../global-options.js";
import { printVersion } from "./version-action.js";

/** `bhatti version`: the CLI's version and the Node running it, without touching the network. */
export function registerVersionCommand(program: Command): void {
  program
    .command("version")
    .description("print the bhatti version")
    .action((_options: unknown, command: Command) => printVersion(globalOptionsOf(command)));
}
