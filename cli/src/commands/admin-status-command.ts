import type { Command } from "commander";
import { commandGroup } from "../command-group.js";
import { globalOptionsOf } from "../global-options.js";

/** `bhatti admin status`: every process's health as the gateway sees it, host usage, sandbox counts, images. */
export function registerAdminStatusCommand(program: Command): void {
  commandGroup(program, "admin", "operate the bhatti server (admin key required)")
    .command("status")
    .description(
      "show the health of every bhatti process, host memory and disk, sandbox counts and image storage",
    )
    .action(async (_options: unknown, command: Command) => {
      const { runAdminStatus } = await import("./admin-status-action.js");
      await runAdminStatus(globalOptionsOf(command));
    });
}
