import type { Command } from "commander";
import { commandGroup } from "../command-group.js";
import { globalOptionsOf } from "../global-options.js";

/** `bhatti secret set|list|delete`: the caller's secrets, injected into sandboxes as env vars. */
export function registerSecretCommands(program: Command): void {
  const secret = commandGroup(program, "secret", "manage your secrets (values are never shown)");
  secret
    .command("set <name> [value]")
    .description("create or replace a secret; the value comes from --value, the argument, or stdin")
    .option("--value <value>", "the value (prefer stdin: arguments are visible to other local users)")
    .action(
      async (name: string, value: string | undefined, options: { value?: string }, command: Command) => {
        const { runSecretSet } = await import("./secret-action.js");
        await runSecretSet(globalOptionsOf(command), name, options.value ?? value);
      },
    );
  secret
    .command("list")
    .alias("ls")
    .description("list secret names and when they changed")
    .action(async (_options: unknown, command: Command) => {
      const { runSecretList } = await import("./secret-action.js");
      await runSecretList(globalOptionsOf(command));
    });
  secret
    .command("delete <name>")
    .alias("rm")
    .description("delete a secret")
    .option("-y, --yes", "do not ask for confirmation")
    .action(async (name: string, options: { yes?: boolean }, command: Command) => {
      const { runSecretDelete } = await import("./secret-action.js");
      await runSecretDelete(globalOptionsOf(command), name, options.yes === true);
    });
}
