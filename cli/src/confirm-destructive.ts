import { createInterface } from "node:readline/promises";
import { CliError } from "./cli-error.js";

/** v1's rule for destructive commands: ask `[y/N]` on a terminal; elsewhere require --yes. */
export async function confirmDestructive(question: string, yes: boolean): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY) throw new CliError("Use --yes to confirm in non-interactive mode");
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = (await rl.question(`${question} [y/N] `)).trim().toLowerCase();
    if (answer !== "y" && answer !== "yes") throw new CliError("cancelled");
  } finally {
    rl.close();
  }
}
