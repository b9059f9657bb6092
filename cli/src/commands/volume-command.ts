import type { Command } from "commander";
import { commandGroup } from "../command-group.js";
import { globalOptionsOf } from "../global-options.js";

/** `bhatti volume create|list|delete|resize`: the caller's volumes (data that outlives sandboxes). */
export function registerVolumeCommands(program: Command): void {
  const volume = commandGroup(program, "volume", "manage your volumes (ext4 disks that outlive sandboxes)");
  volume
    .command("create <name>")
    .description("create a volume; mount it with `bhatti create --volume NAME:/path[:ro]`")
    .requiredOption("--size <size>", "size, e.g. 512M, 1G, 10G (the volume's quota)")
    .action(async (name: string, options: { size: string }, command: Command) => {
      const { runVolumeCreate } = await import("./volume-action.js");
      await runVolumeCreate(globalOptionsOf(command), name, options.size);
    });
  volume
    .command("list")
    .alias("ls")
    .description("list volumes, their sizes and where they are mounted")
    .action(async (_options: unknown, command: Command) => {
      const { runVolumeList } = await import("./volume-action.js");
      await runVolumeList(globalOptionsOf(command));
    });
  volume
    .command("resize <name>")
    .description("grow a volume (only while no sandbox has it mounted)")
    .requiredOption("--size <size>", "new size, e.g. 2G (never smaller than now)")
    .action(async (name: string, options: { size: string }, command: Command) => {
      const { runVolumeResize } = await import("./volume-action.js");
      await runVolumeResize(globalOptionsOf(command), name, options.size);
    });
  volume
    .command("delete <name>")
    .alias("rm")
    .description("delete a volume and its data (refused while mounted)")
    .option("-y, --yes", "do not ask for confirmation")
    .action(async (name: string, options: { yes?: boolean }, command: Command) => {
      const { runVolumeDelete } = await import("./volume-action.js");
      await runVolumeDelete(globalOptionsOf(command), name, options.yes === true);
    });
}
