import type { Command } from "commander";
import { commandGroup } from "../command-group.js";
import { globalOptionsOf } from "../global-options.js";

/** `bhatti snapshot create|list|resume|delete`: named snapshots of sandboxes (docs/snapshots.md). */
export function registerSnapshotCommands(program: Command): void {
  const snapshot = commandGroup(
    program,
    "snapshot",
    "save a sandbox's state by name; fork or rewind from it",
  );
  snapshot
    .command("create <sandbox> <name>")
    .description("snapshot memory, processes and disk (the sandbox pauses briefly and keeps running)")
    .option("--fs-only", "filesystem only: cheaper, resumes by a fresh boot")
    .action(async (sandbox: string, name: string, options: { fsOnly?: boolean }, command: Command) => {
      const { runSnapshotCreate } = await import("./snapshot-action.js");
      await runSnapshotCreate(globalOptionsOf(command), sandbox, name, options.fsOnly === true);
    });
  snapshot
    .command("list")
    .alias("ls")
    .description("list your snapshots")
    .action(async (_options: unknown, command: Command) => {
      const { runSnapshotList } = await import("./snapshot-action.js");
      await runSnapshotList(globalOptionsOf(command));
    });
  snapshot
    .command("resume <snapshot>")
    .description("start a new sandbox from a snapshot (a fork), or rewind one with --into")
    .option("--name <name>", "the new sandbox's name (default <snapshot>-<6hex>)")
    .option("--into <sandbox>", "rewind this existing sandbox instead (same id, name and address)")
    .action(async (name: string, options: { name?: string; into?: string }, command: Command) => {
      const { runSnapshotResume } = await import("./snapshot-action.js");
      await runSnapshotResume(globalOptionsOf(command), name, options);
    });
  snapshot
    .command("delete <snapshot>")
    .alias("rm")
    .description("delete a snapshot and its files")
    .option("-y, --yes", "do not ask for confirmation")
    .action(async (name: string, options: { yes?: boolean }, command: Command) => {
      const { runSnapshotDelete } = await import("./snapshot-action.js");
      await runSnapshotDelete(globalOptionsOf(command), name, options.yes === true);
    });
}
