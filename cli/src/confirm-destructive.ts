import { createInterface } from "node:readline/promises";
import { CliError } from "./cli-error.js";

/**
 * The seed's rule for destructive commands: ask `[y/N]` when stdin is a terminal (unless --yes);
 * when it is not (scripts, agents, pipes) there is nobody to ask, so the command proceeds, as
 * `bhatti destroy dev` always did in the seed.
 */
export async function confirmDestructive(question: string, yes: boolean): Promise<void> {
  if (yes || !process.stdin.isTTY) return;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = (await rl.question(`${question} [y/N] `)).trim().toLowerCase();
    if (answer !== "y" && answer !== "yes") throw new CliError("cancelled");
  } finally {
    rl.close();
  }
}
