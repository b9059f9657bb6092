/** The program's options that take a value: what follows them is not the command name. */
const optionsWithValue = new Set(["--url", "--token"]);

/**
 * The command `bhatti ARGS` runs (its first word that is not a global option), or undefined
 * when there is none or help is asked for before it (`bhatti --help`, `bhatti -h list`).
 * `help` itself is returned as "help" (no command of that name: every command gets defined).
 */
export function invokedCommand(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === "--") return undefined;
    if (!arg.startsWith("-")) return arg;
    if (arg === "-h" || arg === "--help") return undefined;
    if (optionsWithValue.has(arg)) i++;
  }
  return undefined;
}
