import type { Command } from "commander";

/** Flags every command accepts (defined on the program, usable anywhere on the command line). */
export interface GlobalOptions {
  /** Print machine-readable JSON instead of text. */
  readonly json?: boolean;
  /** Gateway URL, overriding the client config. */
  readonly url?: string;
  /** API key, overriding the client config. */
  readonly token?: string;
}

export function globalOptionsOf(command: Command): GlobalOptions {
  return command.optsWithGlobals<GlobalOptions>();
}
