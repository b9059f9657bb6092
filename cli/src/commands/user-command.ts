import type { Command } from "commander";
import { commandGroup } from "../command-group.js";
import { globalOptionsOf } from "../global-options.js";
import type { UserLimitFlags } from "./user-action.js";

const toCount = (flag: string) => (raw: string) => {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} needs a positive integer, got "${raw}"`);
  return n;
};

function limitOptions(cmd: Command): Command {
  return cmd
    .option("--max-sandboxes <n>", "sandboxes at once (default 5)", toCount("--max-sandboxes"))
    .option("--max-cpus <n>", "CPUs per sandbox (default 4)", toCount("--max-cpus"))
    .option("--max-memory <mb>", "memory per sandbox in MB (default 4096)", toCount("--max-memory"))
    .option(
      "--max-volume-storage <mb>",
      "total volume storage in MB (default 20480)",
      toCount("--max-volume-storage"),
    )
    .option("--max-snapshots <n>", "snapshots (default 5)", toCount("--max-snapshots"))
    .option("--max-images <n>", "images (default 10)", toCount("--max-images"))
    .option(
      "--creates-per-minute <n>",
      "sandbox creations per minute (default 10)",
      toCount("--creates-per-minute"),
    )
    .option("--execs-per-minute <n>", "execs per minute (default 120)", toCount("--execs-per-minute"));
}

/** `bhatti user create|list|rotate-key|limits|delete|whoami` (admin key required, except whoami). */
export function registerUserCommands(program: Command): void {
  const user = commandGroup(program, "user", "manage users and API keys (admin key required)");
  limitOptions(
    user
      .command("create")
      .description("create a user and print its API key (shown once)")
      .requiredOption("--name <name>", "user name")
      .option("--admin", "make the user an admin"),
  ).action(async (options: UserLimitFlags & { name: string; admin?: boolean }, command: Command) => {
    const { runUserCreate } = await import("./user-action.js");
    await runUserCreate(globalOptionsOf(command), options);
  });
  user
    .command("list")
    .alias("ls")
    .description("list users with their limits and sandbox counts")
    .action(async (_options: unknown, command: Command) => {
      const { runUserList } = await import("./user-action.js");
      await runUserList(globalOptionsOf(command));
    });
  user
    .command("rotate-key <user>")
    .description("replace a user's API key (the old one stops working at once) and print the new one")
    .action(async (name: string, _options: unknown, command: Command) => {
      const { runUserRotateKey } = await import("./user-action.js");
      await runUserRotateKey(globalOptionsOf(command), name);
    });
  limitOptions(user.command("limits <user>").description("change a user's limits")).action(
    async (name: string, options: UserLimitFlags, command: Command) => {
      const { runUserLimits } = await import("./user-action.js");
      await runUserLimits(globalOptionsOf(command), name, options);
    },
  );
  user
    .command("delete <user>")
    .alias("rm")
    .description("delete a user (refused while it has sandboxes or secrets)")
    .option("-y, --yes", "do not ask for confirmation")
    .action(async (name: string, options: { yes?: boolean }, command: Command) => {
      const { runUserDelete } = await import("./user-action.js");
      await runUserDelete(globalOptionsOf(command), name, options.yes === true);
    });
  user
    .command("whoami")
    .description("show the user of the current API key")
    .action(async (_options: unknown, command: Command) => {
      const { runWhoAmI } = await import("./user-action.js");
      await runWhoAmI(globalOptionsOf(command));
    });
}
