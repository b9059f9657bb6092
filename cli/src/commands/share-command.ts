import type { Command } from "commander";
import { globalOptionsOf } from "../global-options.js";

/** `bhatti share NAME`: a link to a web terminal on a session of the sandbox. */
export function registerShareCommand(program: Command): void {
  program
    .command("share")
    .description("print a link to a web terminal attached to a session of the sandbox (signed, expiring)")
    .argument("<sandbox>", "name or id")
    .option("--expires <duration>", "lifetime of the link, e.g. 30m, 1h, 7d (default 1h, at most 30d)")
    .option("--read-only", "viewers see the terminal but cannot type")
    .option("--session <id>", "share this running TTY session instead of a new shell")
    .option("--list", "list the sandbox's live shares")
    .option("--revoke [share-id]", "revoke one share, or every share of the sandbox")
    .action(
      async (
        sandbox: string,
        opts: {
          expires?: string;
          readOnly?: boolean;
          session?: string;
          list?: boolean;
          revoke?: string | boolean;
        },
        command: Command,
      ) => {
        const { runShare } = await import("./share-action.js");
        await runShare(globalOptionsOf(command), sandbox, opts);
      },
    );
}
