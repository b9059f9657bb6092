import { type Command, InvalidArgumentError } from "commander";
import { CliError } from "../cli-error.js";
import { globalOptionsOf } from "../global-options.js";

const parsePort = (raw: string): number => {
  if (!/^\d{1,5}$/.test(raw)) throw new InvalidArgumentError("a port is an integer in 1..65535");
  return Number(raw);
};

/**
 * `bhatti publish SANDBOX [-p PORT] [--alias NAME] [--private]`: publishes a port and prints its
 * preview URL; without -p, lists the published ports.
 */
export function registerPublishCommand(program: Command): void {
  program
    .command("publish <sandbox>")
    .description("publish a sandbox port under a preview URL (prints it); without -p, list published ports")
    .option("-p, --port <port>", "the port inside the sandbox (1..65535)", parsePort)
    .option("--alias <name>", "the URL's name (default: <sandbox name>-<6 hex>)")
    .option("--private", "require your API key on every request")
    .action(
      async (
        sandbox: string,
        options: { port?: number; alias?: string; private?: boolean },
        command: Command,
      ) => {
        const { runPublish, runPublishList } = await import("./publish-action.js");
        const global = globalOptionsOf(command);
        if (options.port === undefined) {
          if (options.alias !== undefined || options.private === true) {
            throw new CliError(
              "--alias and --private need -p PORT",
              "bhatti publish SANDBOX -p PORT [--alias NAME] [--private]",
            );
          }
          await runPublishList(global, sandbox);
        } else {
          await runPublish(global, sandbox, options.port, options.alias, options.private === true);
        }
      },
    );
}

/** `bhatti unpublish SANDBOX -p PORT`: the preview URL answers 404 from then on. */
export function registerUnpublishCommand(program: Command): void {
  program
    .command("unpublish <sandbox>")
    .description("unpublish a sandbox port (its preview URL stops working at once)")
    .requiredOption("-p, --port <port>", "the published port", parsePort)
    .action(async (sandbox: string, options: { port: number }, command: Command) => {
      const { runUnpublish } = await import("./publish-action.js");
      await runUnpublish(globalOptionsOf(command), sandbox, options.port);
    });
}
