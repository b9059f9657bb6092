import type { Command } from "commander";
import { commandGroup } from "../command-group.js";
import { globalOptionsOf } from "../global-options.js";
import type { AdminEventsFlags } from "./admin-events-action.js";

/** `bhatti admin events|metrics|backup`: the store's records, for operators (admin key required). */
export function registerAdminEventsCommands(program: Command): void {
  const admin = commandGroup(program, "admin", "operate the bhatti server (admin key required)");
  admin
    .command("events")
    .description("list events, newest first")
    .option("--type <prefix>", 'event type or prefix, e.g. "thermal." or "auth.failed"')
    .option("--since <when>", 'a duration back from now ("30m", "24h", "7d") or a date')
    .option("--until <when>", "same forms as --since")
    .option("--sandbox <id>", "only events of this sandbox id")
    .option("--user <user>", "only events of this user (name or id)")
    .option("--limit <n>", "at most this many (default 50, max 10000)")
    .option("--count", "print only the number of matching events")
    .action(async (options: AdminEventsFlags, command: Command) => {
      const { runAdminEvents } = await import("./admin-events-action.js");
      await runAdminEvents(globalOptionsOf(command), options);
    });
  admin
    .command("metrics")
    .description("show current metrics and recorded snapshots")
    .option("--since <when>", 'history from ("1h" by default, "24h", "7d" or a date)')
    .option("--limit <n>", "at most this many snapshots (default 20)")
    .action(async (options: { since?: string; limit?: string }, command: Command) => {
      const { runAdminMetrics } = await import("./admin-events-action.js");
      await runAdminMetrics(globalOptionsOf(command), options);
    });
  admin
    .command("backup <path>")
    .description(
      "write a consistent copy of the database (0600, must not exist) to the server's backup_dir: NAME, or a path in that directory",
    )
    .action(async (path: string, _options: unknown, command: Command) => {
      const { runAdminBackup } = await import("./admin-events-action.js");
      await runAdminBackup(globalOptionsOf(command), path);
    });
}
