import { runCli } from "./cli-program.js";
import { defineCommands } from "./command-table.js";

// The `bhatti` command line for every command but the hot ones (bhatti-list.ts, bhatti-exec.ts):
// only the command that runs is imported and defined (command-table.ts).
await runCli(process.argv, defineCommands);
