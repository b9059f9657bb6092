import type { Command } from "commander";
import { globalOptionsOf } from "../global-options.js";

/** `bhatti setup`: asks for the endpoint and key, writes ~/.bhatti/config.yaml, tests them. */
export function registerSetupCommand(program: Command): void {
  program
    .command("setup")
    .description("configure the CLI: gateway URL and API key (uses --url/--token when given)")
    .action(async (_opts: unknown, command: Command) => {
      const { runSetup } = await import("./setup-action.js");
      await runSetup(globalOptionsOf(command));
    });
}
