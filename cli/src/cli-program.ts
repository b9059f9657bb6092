import { BHATTI_VERSION } from "@bhatti/runtime/version";
import { Command, CommanderError } from "commander";
import { CliError } from "./cli-error.js";
import type { GlobalOptions } from "./global-options.js";
import { invokedCommand } from "./invoked-command.js";

/** Defines on `program` what the command `name` (undefined: help or none) needs. */
export type DefineCommands = (program: Command, name: string | undefined) => Promise<void> | void;

function isConnectError(e: unknown): boolean {
  return typeof e === "object" && e !== null && (e as { name?: unknown }).name === "ConnectError";
}

async function toCliError(e: unknown, program: Command): Promise<CliError> {
  if (e instanceof CliError) return e;
  if (isConnectError(e)) {
    const [{ describeGatewayError }, { resolveClientConfig }] = await Promise.all([
      import("./gateway-errors.js"),
      import("./client-config.js"),
    ]);
    let url = "the gateway";
    try {
      url = resolveClientConfig(program.opts<GlobalOptions>()).url;
    } catch {
      // The config problem itself is reported elsewhere; keep the original error here.
    }
    return describeGatewayError(e, url);
  }
  return new CliError(e instanceof Error ? e.message : String(e));
}

/**
 * The `bhatti` command line: the program and its global options, the commands `define` adds for
 * this invocation, and the one place errors become a message and exit code 1.
 */
/** The `bhatti` program with its global options and no commands (docs/cli.md is rendered from it too). */
export function createProgram(): Command {
  return new Command("bhatti")
    .description("self-hostable sandboxes for AI coding agents")
    .version(BHATTI_VERSION, "-V, --version", "print the bhatti version")
    .option("--json", "print JSON instead of text")
    .option("--url <url>", "gateway URL (default: client config, $BHATTI_URL, http://127.0.0.1:8080)")
    .option("--token <key>", "API key (default: client config, $BHATTI_TOKEN)")
    .showHelpAfterError()
    .exitOverride();
}

export async function runCli(argv: readonly string[], define: DefineCommands): Promise<void> {
  const program = createProgram();
  try {
    await define(program, invokedCommand(argv.slice(2)));
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander has printed its message (or the help/version text) already.
      process.exitCode = e.exitCode === 0 ? 0 : 1;
    } else {
      const err = await toCliError(e, program);
      process.stderr.write(`error: ${err.message}\n`);
      if (err.hint !== undefined) process.stderr.write(`hint: ${err.hint}\n`);
      process.exitCode = 1;
    }
  }
}
