import { BHATTI_VERSION } from "@bhatti/runtime/version";
import type { Command } from "commander";
import { globalOptionsOf } from "../global-options.js";
import { emit } from "../output.js";

/** `bhatti version`: the CLI's version and the Node running it, without touching the network. */
export function registerVersionCommand(program: Command): void {
  program
    .command("version")
    .description("print the bhatti version")
    .action((_options: unknown, command: Command) => {
      emit(globalOptionsOf(command), { version: BHATTI_VERSION, node: process.versions.node }, () =>
        process.stdout.write(`bhatti ${BHATTI_VERSION} (node ${process.version})\n`),
      );
    });
}
