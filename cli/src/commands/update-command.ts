import type { Command } from "commander";
import { globalOptionsOf } from "../global-options.js";

/**
 * `bhatti update`: fetch the branch the installation follows, build and smoke-test the new
 * commit in a release directory of its own, flip the install link, restart the services
 * (sandboxes keep running); `--rollback` flips back.
 */
export function registerUpdateCommand(program: Command): void {
  program
    .command("update")
    .description(
      "update this installation from its git remote: build and smoke-test the new commit, switch to it, restart the services (sandboxes keep running)",
    )
    .option("--rollback", "switch back to the release that ran before the last update")
    .option("--tiers <tiers>", 'also build these sandbox image tiers if missing: "all" or a,b')
    .option("--link <path>", "the install link install.sh made", "/opt/bhatti")
    .option("--releases-dir <dir>", "where releases are built (default: <link>-releases)")
    .option("--state-dir <dir>", "the server's state directory (for --tiers)", "/var/lib/bhatti")
    .option("--no-restart", "switch the link but leave the running services alone")
    .option(
      "--health-timeout <sec>",
      "seconds the restarted gateway has to answer /health before the update is undone",
      Number,
      120,
    )
    .action(
      async (
        opts: {
          healthTimeout: number;
          rollback?: boolean;
          tiers?: string;
          link: string;
          releasesDir?: string;
          stateDir: string;
          restart: boolean;
        },
        command: Command,
      ) => {
        const { runUpdate } = await import("./update-action.js");
        await runUpdate(globalOptionsOf(command), {
          link: opts.link,
          stateDir: opts.stateDir,
          restart: opts.restart,
          healthTimeoutMs: opts.healthTimeout * 1000,
          ...(opts.rollback === true ? { rollback: true } : {}),
          ...(opts.tiers !== undefined ? { tiers: opts.tiers } : {}),
          ...(opts.releasesDir !== undefined ? { releasesDir: opts.releasesDir } : {}),
        });
      },
    );
}
