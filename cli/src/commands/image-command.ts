import type { Command } from "commander";
import { commandGroup } from "../command-group.js";
import { globalOptionsOf } from "../global-options.js";

/** `bhatti image list`. */
export function registerImageCommands(program: Command): void {
  commandGroup(program, "image", "root filesystem images")
    .command("list")
    .alias("ls")
    .description("list the images sandboxes can be created from")
    .action(async (_opts: unknown, command: Command) => {
      const { runImageList } = await import("./image-action.js");
      await runImageList(globalOptionsOf(command));
    });
}
