import type { Command } from "commander";

/**
 * The subcommand group `name` (e.g. `admin`), created on first use, so that commands from
 * different files can add to one group.
 */
export function commandGroup(program: Command, name: string, description: string): Command {
  const existing = program.commands.find((c) => c.name() === name);
  if (existing !== undefined) return existing;
  return program.command(name).description(description);
}
