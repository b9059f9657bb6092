import type { Command } from "commander";

type Registrar = (program: Command) => void;

/** One top-level command (or one file's part of a group) and how to load what defines it. */
export interface CommandEntry {
  /** The name and aliases it is invoked by. */
  readonly names: readonly string[];
  /** Imports the file that defines it; the registrar adds it to the program. */
  readonly load: () => Promise<Registrar>;
  /** It needs every other command defined too (the completion script lists them all). */
  readonly needsAll?: boolean;
}

/**
 * Every command, in the order `bhatti --help` lists them. `bhatti NAME` imports and defines only
 * NAME's entry; help, an unknown name and `completion` define all of them, so their output is
 * the same as with every command registered up front. A command file imports only commander
 * types and light modules at top level; Connect, generated code and the rest load in its action.
 */
export const commandTable: readonly CommandEntry[] = [
  {
    names: ["version"],
    load: async () => (await import("./commands/version-command.js")).registerVersionCommand,
  },
  {
    names: ["update"],
    load: async () => (await import("./commands/update-command.js")).registerUpdateCommand,
  },
  {
    names: ["serve"],
    load: async () => (await import("./commands/serve-command.js")).registerServeCommand,
  },
  {
    names: ["admin"],
    // admin-events adds to the group after the other commands, as it always has.
    load: async () => (await import("./commands/admin-status-command.js")).registerAdminStatusCommand,
  },
  {
    names: ["create"],
    load: async () => (await import("./commands/sandbox-command.js")).registerCreateCommand,
  },
  {
    names: ["list", "ls"],
    load: async () => (await import("./commands/sandbox-list-command.js")).registerListCommand,
  },
  {
    names: ["inspect", "info"],
    load: async () => (await import("./commands/sandbox-command.js")).registerInspectCommand,
  },
  {
    names: ["edit"],
    load: async () => (await import("./commands/sandbox-command.js")).registerEditCommand,
  },
  {
    names: ["stop"],
    load: async () => (await import("./commands/sandbox-command.js")).registerStopCommand,
  },
  {
    names: ["start"],
    load: async () => (await import("./commands/sandbox-command.js")).registerStartCommand,
  },
  {
    names: ["destroy", "rm"],
    load: async () => (await import("./commands/sandbox-command.js")).registerDestroyCommand,
  },
  { names: ["ps"], load: async () => (await import("./commands/sandbox-command.js")).registerPsCommand },
  { names: ["exec"], load: async () => (await import("./commands/exec-command.js")).registerExecCommand },
  {
    names: ["shell", "sh"],
    load: async () => (await import("./commands/shell-command.js")).registerShellCommand,
  },
  { names: ["file"], load: async () => (await import("./commands/file-command.js")).registerFileCommands },
  {
    names: ["image"],
    load: async () => (await import("./commands/image-command.js")).registerImageCommands,
  },
  {
    names: ["setup"],
    load: async () => (await import("./commands/setup-command.js")).registerSetupCommand,
  },
  {
    names: ["completion"],
    load: async () => (await import("./commands/completion-command.js")).registerCompletionCommand,
    needsAll: true,
  },
  {
    names: ["__complete-names"],
    load: async () => (await import("./commands/completion-command.js")).registerCompleteNamesCommand,
  },
  {
    names: ["admin"],
    load: async () => (await import("./commands/admin-events-command.js")).registerAdminEventsCommands,
  },
  { names: ["user"], load: async () => (await import("./commands/user-command.js")).registerUserCommands },
  {
    names: ["secret"],
    load: async () => (await import("./commands/secret-command.js")).registerSecretCommands,
  },
  {
    names: ["snapshot"],
    load: async () => (await import("./commands/snapshot-command.js")).registerSnapshotCommands,
  },
  {
    names: ["volume"],
    load: async () => (await import("./commands/volume-command.js")).registerVolumeCommands,
  },
  {
    names: ["forward"],
    load: async () => (await import("./commands/forward-command.js")).registerForwardCommand,
  },
  { names: ["share"], load: async () => (await import("./commands/share-command.js")).registerShareCommand },
  {
    names: ["publish"],
    load: async () => (await import("./commands/publish-command.js")).registerPublishCommand,
  },
  {
    names: ["unpublish"],
    load: async () => (await import("./commands/publish-command.js")).registerUnpublishCommand,
  },
];

/**
 * Defines on `program` the commands `name` needs: its entries, or every command when `name` is
 * undefined (help), unknown (commander's error suggests the nearest names) or asks for all.
 */
export async function defineCommands(program: Command, name: string | undefined): Promise<void> {
  const own = name === undefined ? [] : commandTable.filter((e) => e.names.includes(name));
  const entries = own.length === 0 || own.some((e) => e.needsAll === true) ? commandTable : own;
  const registrars = await Promise.all(entries.map((e) => e.load()));
  for (const register of registrars) register(program);
}
