import type { Command } from "commander";

/** `bhatti completion bash|zsh|fish`: a completion script (names come from a local cache). */
export function registerCompletionCommand(program: Command): void {
  program
    .command("completion")
    .description("print a shell completion script: bhatti completion bash|zsh|fish")
    .argument("<shell>", "bash, zsh or fish")
    .action(async (shell: string) => {
      const { completionScript } = await import("./completion-action.js");
      process.stdout.write(completionScript(program, shell));
    });
}

/** `bhatti __complete-names`: what the completion scripts call on every tab. */
export function registerCompleteNamesCommand(program: Command): void {
  program
    .command("__complete-names", { hidden: true })
    .description("sandbox names from the local cache (used by completion)")
    .action(async () => {
      const { readSandboxNames } = await import("../sandbox-name-cache.js");
      const names = readSandboxNames();
      if (names.length > 0) process.stdout.write(`${names.join("\n")}\n`);
    });
}
