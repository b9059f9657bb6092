import type { Command } from "commander";
import { globalOptionsOf } from "../global-options.js";
import { collectKeyValue, collectList } from "../key-value-flags.js";

// The sandbox commands: create, inspect|info, edit, stop, start, destroy|rm, ps (list|ls is in
// sandbox-list-command.ts, so that `bhatti list` loads nothing else). One function each: the
// command table registers only the command that runs.

export function registerCreateCommand(program: Command): void {
  program
    .command("create")
    .description("create a sandbox (returns the existing one if the name is taken)")
    .option("--name <name>", "sandbox name (default sandbox-<6hex>)")
    .option("--image <image>", "root filesystem image (default: minimal)")
    .option("--cpus <n>", "CPU cores (default 1)", Number)
    .option("--memory <mb>", "memory in MB (default 1024)", Number)
    .option("--disk-size <mb>", "disk size in MB", Number)
    .option("--env <K=V>", "environment variable (repeatable, or K=V,K2=V2)", collectKeyValue("--env"))
    .option("--secret <name>", "export a secret as an env var (repeatable)", collectList)
    .option("--file <local:guest>", "copy a local file into the sandbox (repeatable)", collectList)
    .option("--label <k=v>", "label (repeatable)", collectKeyValue("--label"))
    .option("--volume <name:/path[:ro]>", "mount one of your volumes (repeatable)", collectList)
    .option("--init <command>", 'shell command run once at boot (session "init")')
    .option("--keep-hot", "never pause or snapshot this sandbox")
    .action(async (opts: Record<string, unknown>, command: Command) => {
      const { runCreate } = await import("./sandbox-action.js");
      await runCreate(globalOptionsOf(command), opts);
    });
}

export function registerInspectCommand(program: Command): void {
  program
    .command("inspect")
    .alias("info")
    .description("show one sandbox")
    .argument("<sandbox>", "name or id")
    .action(async (sandbox: string, _opts: unknown, command: Command) => {
      const { runInspect } = await import("./sandbox-action.js");
      await runInspect(globalOptionsOf(command), sandbox);
    });
}

export function registerEditCommand(program: Command): void {
  program
    .command("edit")
    .description("change keep-hot, name or labels")
    .argument("<sandbox>", "name or id")
    .option("--keep-hot", "keep the sandbox hot")
    .option("--allow-cold", "let the sandbox cool down again")
    .option("--name <name>", "rename")
    .option("--label <k=v>", "add or change a label (repeatable)", collectKeyValue("--label"))
    .option("--label-delete <key>", "remove a label (repeatable)", collectList)
    .action(async (sandbox: string, opts: Record<string, unknown>, command: Command) => {
      const { runEdit } = await import("./sandbox-action.js");
      await runEdit(globalOptionsOf(command), sandbox, opts);
    });
}

export function registerStopCommand(program: Command): void {
  program
    .command("stop")
    .description("snapshot a sandbox to disk (memory and processes kept)")
    .argument("<sandbox>", "name or id")
    .action(async (sandbox: string, _opts: unknown, command: Command) => {
      const { runStop } = await import("./sandbox-action.js");
      await runStop(globalOptionsOf(command), sandbox);
    });
}

export function registerStartCommand(program: Command): void {
  program
    .command("start")
    .description("restore a stopped sandbox")
    .argument("<sandbox>", "name or id")
    .option("--force", "retry a restore that failed before (clears the circuit breaker)")
    .action(async (sandbox: string, opts: { force?: boolean }, command: Command) => {
      const { runStart } = await import("./sandbox-action.js");
      await runStart(globalOptionsOf(command), sandbox, opts.force === true);
    });
}

export function registerDestroyCommand(program: Command): void {
  program
    .command("destroy")
    .alias("rm")
    .description("destroy a sandbox and everything in it")
    .argument("<sandbox>", "name or id")
    .option("-y, --yes", "do not ask for confirmation")
    .action(async (sandbox: string, opts: { yes?: boolean }, command: Command) => {
      const { runDestroy } = await import("./sandbox-action.js");
      await runDestroy(globalOptionsOf(command), sandbox, opts.yes === true);
    });
}

export function registerPsCommand(program: Command): void {
  program
    .command("ps")
    .description("list a sandbox's sessions")
    .argument("<sandbox>", "name or id")
    .action(async (sandbox: string, _opts: unknown, command: Command) => {
      const { runPs } = await import("./sandbox-action.js");
      await runPs(globalOptionsOf(command), sandbox);
    });
}
