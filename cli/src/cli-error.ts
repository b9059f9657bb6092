/** An error meant for the user: printed as `error: <message>` plus an optional hint; exit code 1. */
export class CliError extends Error {
  override readonly name = "CliError";
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** Hints for well-known failures, matched on the message as v1 did. */
const messageHints: readonly [RegExp, string][] = [
  [/not running/i, "start it with: bhatti start <name>"],
  [/start --force|circuit/i, "retry with: bhatti start --force <name>"],
  [/not found/i, "list what exists with: bhatti list"],
  [/already exists|already in use/i, "destroy the existing one or choose another name"],
  [/limit/i, "destroy sandboxes you no longer need, or ask an admin to raise your limits"],
];

export function hintForMessage(message: string): string | undefined {
  return messageHints.find(([pattern]) => pattern.test(message))?.[1];
}
